#![no_main]

// Operation sequences against the model: reads, writes, rotations, CMK state changes,
// time jumps, snapshots, restores and injected KMS faults.
libfuzzer_sys::fuzz_target!(|data: &[u8]| atrest::fuzzing::operations(data));
