//! Decoder fuzzing in the test suite: a few seconds of `sim fuzz` with a
//! fixed seed, every target, asserting no panic and every input within
//! the allocation bound. `sim fuzz` runs the same targets at 10^7 inputs.

use model_tests::fuzz::{self, alloc::CountingAlloc, targets};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Inputs per target: under a tenth of a second each in optimised builds.
const INPUTS: u64 = 100_000;
const SEED: u64 = 0x6824;

#[test]
fn every_decoder_survives_random_and_mutated_inputs_within_its_allocation_bound() {
    assert!(fuzz::alloc::is_installed());
    let mut failed = Vec::new();
    for (i, t) in targets::all().iter().enumerate() {
        let r = fuzz::run(i, SEED, INPUTS);
        assert_eq!(r.inputs, INPUTS);
        if !r.clean() {
            failed.push(format!(
                "{}: {} panics (first: {:?}), {} over the bound (first: {:?}); replay with \
                 `sim fuzz --target {} --seed {SEED} --replay INDEX`",
                t.name,
                r.panics,
                r.first_panic
                    .as_ref()
                    .map(|f| (f.index, &f.message, fuzz::hex(&f.input))),
                r.over_bound,
                r.first_over_bound,
                t.name
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The allocation bound is live: an input that makes a decoder allocate
/// from a claimed length shows up (a decoder sized from a 4-byte prefix
/// is exactly what it catches), so a clean run above means something.
#[test]
fn the_measurement_sees_an_allocation_from_a_claimed_length() {
    let claimed = u32::from_be_bytes([0, 0x10, 0, 0]) as usize;
    let ((), peak) = fuzz::alloc::measure(|| {
        let v = vec![0u8; claimed];
        std::hint::black_box(&v);
    });
    assert!(peak >= claimed);
    assert!(peak > targets::BOUND.limit(4));
}

/// `--replay INDEX` decodes the very input the run decoded at INDEX.
#[test]
fn replaying_an_input_rebuilds_it() {
    let all = targets::all();
    let t = &all[0];
    let corpus = (t.corpus)();
    let a = fuzz::input(0, &corpus, t, SEED, 12345);
    let (b, _) = fuzz::replay(0, SEED, 12345);
    assert_eq!(a, b);
}
