//! Example Weir stage: filter.
