//! The bottom layer: how a store's failure becomes an answer, and how often a guarded change
//! is tried before it answers `busy`. Every other module may use it; it uses none.

use vaultx_core::Problem;
use vaultx_core::ports::StoreError;
use vaultx_core::problem::ProblemKind;

/// Attempts at a guarded change before answering `busy`: a conflict means another request
/// changed the same rows in the few milliseconds between our read and our write.
pub const ATTEMPTS: usize = 16;

/// 503 with `Retry-After`: the same rows kept changing under us; trying again will do.
pub fn busy() -> Problem {
    let mut p = Problem::new(ProblemKind::Busy, "the same content or file is changing right now; send the request again");
    p.headers.push(("retry-after", "1".into()));
    p
}

/// Store failures are ours: log the cause, answer with a generic 500.
pub fn store_failure(e: StoreError) -> Problem {
    if e == StoreError::Contended {
        return busy();
    }
    eprintln!("vaultx: {e}");
    if let StoreError::Invalid(_) = e {
        return Problem::new(ProblemKind::BadRequest, "the request holds a value that cannot be stored or searched for (such as the character U+0000)");
    }
    if let StoreError::Unavailable(_) = e {
        // A store is down, not a bug here: 503, and the client may try again (the cause
        // stays in our log).
        let mut p = Problem::new(ProblemKind::StoreUnavailable, "a store this request needs is unreachable; try again shortly");
        p.headers.push(("retry-after", "1".into()));
        return p;
    }
    Problem::internal()
}
