//! Example Weir stage: endless-loop.
