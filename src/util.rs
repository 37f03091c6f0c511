//! Small helpers shared across layers.

use rand::{Rng, distributions::Alphanumeric};

pub fn random_string(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

pub fn now_ms() -> u64 {
    ruma::MilliSecondsSinceUnixEpoch::now().get().into()
}
