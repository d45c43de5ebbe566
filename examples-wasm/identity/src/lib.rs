//! Example Weir stage: identity.
