//! Example Weir stage: trap.
