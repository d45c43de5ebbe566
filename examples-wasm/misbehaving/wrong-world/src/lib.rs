//! Example Weir stage: wrong-world.
