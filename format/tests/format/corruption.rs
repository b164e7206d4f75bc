//! Corruption: every single-byte change of a small valid file is detected by `open` or
//! `verify`, every truncation is refused by `open`, and nothing panics on the way.

use proptest::prelude::*;

use crate::common::{open, scan_everything, small_file};

#[test]
fn every_single_byte_flip_is_detected() {
    let good = small_file();
    assert!(good.len() > 4096, "the fixture should span many structures");
    let file = open(&good).unwrap();
    let n = file.chunk_count();
    assert!(n > 2, "the fixture should have several chunks");
    file.verify_chunks(0..n / 2).unwrap();
    file.verify_chunks(n / 2..n).unwrap();
    file.verify_layout().unwrap();
    let mut opened_then_failed_verify = 0;
    for at in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            match open(&bad) {
                Err(_) => {}
                Ok(file) => {
                    // Reading an unverified corrupt file must not panic...
                    scan_everything(&file);
                    // ...and verification must catch it.
                    assert!(
                        file.verify().is_err(),
                        "flipping byte {at} with {mask:#04x} went undetected"
                    );
                    // The pieces threads run at once catch it too (a range past the end is
                    // empty, not a panic).
                    let n = file.chunk_count();
                    assert!(
                        file.verify_chunks(0..n / 2).is_err()
                            || file.verify_chunks(n / 2..n + 3).is_err()
                            || file.verify_layout().is_err(),
                        "flipping byte {at} with {mask:#04x} went undetected by the pieces"
                    );
                    opened_then_failed_verify += 1;
                }
            }
        }
    }
    // Most of the file is chunk bodies, which only `verify` reads.
    assert!(opened_then_failed_verify > good.len());
}

/// Footer bytes are guarded by the trailer's hash, so a plain flip never reaches the footer's
/// parsing. With the hash recomputed after each flip (`rehash_footer`), every footer and key
/// index byte is parsed as damaged: `open` refuses or accepts, and nothing panics, whether
/// reading an opened file or verifying it.
#[test]
fn every_footer_byte_flip_with_a_valid_hash_never_panics() {
    let good = small_file();
    let trailer_at = good.len() - quarry_format::spec::TRAILER_LEN;
    let footer_offset =
        u64::from_le_bytes(good[trailer_at..trailer_at + 8].try_into().unwrap()) as usize;
    let mut copy = good.clone();
    assert!(quarry_format::rehash_footer(&mut copy));
    assert_eq!(copy, good, "rehashing a valid file changes nothing");
    let (mut refused, mut opened) = (0, 0);
    for at in footer_offset..trailer_at {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            assert!(quarry_format::rehash_footer(&mut bad));
            match open(&bad) {
                Err(_) => refused += 1,
                Ok(file) => {
                    opened += 1;
                    scan_everything(&file);
                    let _ = file.verify();
                }
            }
        }
    }
    // Both outcomes occur: parsing rejects structural damage, and damage it cannot see (a
    // statistic, a name) opens.
    assert!(
        refused > 0 && opened > 0,
        "refused {refused}, opened {opened}"
    );
}

#[test]
fn every_truncation_is_refused_by_open() {
    let good = small_file();
    for len in 0..good.len() {
        assert!(
            open(&good[..len]).is_err(),
            "truncation to {len} bytes was accepted"
        );
    }
    // Appending bytes is a corruption too: the trailer is no longer at the end.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 64]);
    assert!(open(&longer).is_err());
}

#[test]
fn open_names_the_structure_and_offset() {
    let good = small_file();
    let mut bad = good.clone();
    bad[0] = b'X';
    let msg = open(&bad).unwrap_err().to_string();
    assert!(msg.contains("header") && msg.contains("byte 0"), "{msg}");
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 100] ^= 1; // inside the footer
    let msg = open(&bad).unwrap_err().to_string();
    assert!(msg.contains("footer") && msg.contains("checksum"), "{msg}");
    let mut bad = good.clone();
    bad[n - 30] = 2; // the trailer's major version
    let msg = open(&bad).unwrap_err().to_string();
    assert!(msg.contains("version"), "{msg}");
}

#[test]
fn a_newer_major_version_is_refused_with_a_clear_message() {
    let mut bad = small_file();
    bad[8] = 2; // header major version
    let msg = open(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("unsupported format version 2.0") && msg.contains("newer"),
        "{msg}"
    );
}

#[test]
fn verify_names_the_column_and_row_group_of_a_corrupt_chunk() {
    let good = small_file();
    let file = open(&good).unwrap();
    let meta = file.chunk_meta(1, 3).clone();
    let mut bad = good.clone();
    bad[meta.offset as usize] ^= 0x10;
    let msg = open(&bad).unwrap().verify().unwrap_err().to_string();
    assert!(
        msg.contains("\"city\"") && msg.contains("row group 1"),
        "{msg}"
    );
}

/// Strings are read without a UTF-8 check only after a full verification of that very file:
/// not after a partial one, not after `verify_chunks` (which leaves the layout unchecked), and
/// not for a file whose verifier was stepped over another file.
#[test]
fn only_a_full_verification_of_the_same_file_makes_it_fully_verified() {
    use quarry_format::Step;
    let good = small_file();
    let (a, b) = (open(&good).unwrap(), open(&good).unwrap());
    let strings = |f: &quarry_format::QuarryFile<_>| {
        let mut all = Vec::new();
        for r in 0..f.num_rows() {
            for c in 0..f.schema().len() {
                all.push(format!("{:?}", f.value(r, c)));
            }
        }
        all
    };
    let before = strings(&a);
    assert!(!a.fully_verified());

    a.verify_chunks(0..a.chunk_count()).unwrap();
    assert!(
        !a.fully_verified(),
        "verify_chunks does not check the layout"
    );

    let mut v = a.verifier();
    assert!(matches!(v.step(&a, 1).unwrap(), Step::More { .. }));
    assert!(!a.fully_verified(), "one step is not a full verification");
    while v.step(&b, 1).unwrap() != Step::Done {}
    assert!(
        !a.fully_verified() && !b.fully_verified(),
        "the verifier crossed files"
    );

    b.verify().unwrap();
    assert!(b.fully_verified() && !a.fully_verified());
    assert_eq!(
        strings(&b),
        before,
        "trusted reads return what checked reads did"
    );

    let mut bad = good.clone();
    let meta = a.chunk_meta(1, 3).clone();
    bad[meta.offset as usize] ^= 0x10;
    let bad = open(&bad).unwrap();
    assert!(bad.verify().is_err());
    assert!(!bad.fully_verified());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Bounded stand-in for the fuzzer in CI: random multi-byte damage never panics, and
    /// whatever `open` accepts either verifies or is byte-identical in content.
    #[test]
    fn random_damage_never_panics(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let good = small_file();
        let mut bad = good.clone();
        for (i, b) in &edits {
            let at = i.index(bad.len());
            bad[at] = *b;
        }
        if let Ok(file) = open(&bad) {
            scan_everything(&file);
            if bad != good {
                prop_assert!(file.verify().is_err());
            }
        }
        // The same damage with the footer hash made valid reaches the footer's parsing.
        if quarry_format::rehash_footer(&mut bad) {
            if let Ok(file) = open(&bad) {
                scan_everything(&file);
                let _ = file.verify();
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(file) = open(&bytes) {
            scan_everything(&file);
            let _ = file.verify();
        }
    }
}
