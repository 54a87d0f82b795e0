//! The trust policy (containers-policy.json(5)): which images a copy may read,
//! judged before anything is written.

pub mod config;
mod eval;
mod scope;

pub use config::{Policy, PolicyConfigError, Requirement};
pub use eval::{PolicyImage, Rejection, Verdict, matches};
pub use scope::{docker_reference_of, policy_identity};

/// A policy that accepts everything (`--insecure-policy`).
pub fn insecure_accept_anything() -> Policy {
    Policy {
        default: vec![Requirement::InsecureAcceptAnything],
        transports: vec![],
    }
}
