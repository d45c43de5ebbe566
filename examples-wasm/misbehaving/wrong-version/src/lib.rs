//! Example Weir stage: wrong-version.
