//! The measurements, one module each.

pub mod concurrent;
pub mod density;
pub mod first_start;
pub mod pods;
pub mod serving;
pub mod starts;
