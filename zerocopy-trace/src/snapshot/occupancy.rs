//! What is left in the kernel maps: after every traced process exited, every count should be 0
//! (the reliability tests hold the kernel to that).

/// Entries left in each kernel map: after every traced process exited, all should be 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Occupancy {
    pub counters: usize,
    /// Hot slots still claimed, over all CPUs.
    pub hot: usize,
    pub pending: usize,
    pub traced: usize,
    pub parents: usize,
    /// io_uring requests submitted and not completed (or completed unseen).
    pub io_uring: usize,
}
