//! Weir's plain data types and the traits at its seams: records, outputs, failures, offsets.
