//! graph placeholder
