//! What the GPU targets share.

pub mod lowered_features;
