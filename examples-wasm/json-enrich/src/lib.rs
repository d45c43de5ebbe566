//! Example Weir stage: json-enrich.
