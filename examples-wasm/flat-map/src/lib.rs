//! Example Weir stage: flat-map.
