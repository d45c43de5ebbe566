//! Example Weir stage: memory-hog.
