use super::*;
use crate::Error;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/rbd-diff/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("fixture {path} is missing ({e}): shared/ must sit beside the repo")
    })
}

/// Reads a whole stream into records, with each `w` record's data.
fn read_all(bytes: &[u8]) -> Result<Vec<(Record, Vec<u8>)>, Error> {
    let mut r = DiffReader::new(bytes);
    let mut out = Vec::new();
    loop {
        let rec = r.next_record()?;
        let mut data = Vec::new();
        if let Record::Write { length, .. } = rec {
            data = vec![0; length as usize];
            r.read_data(&mut data)?;
        }
        let end = rec == Record::End;
        out.push((rec, data));
        if end {
            return Ok(out);
        }
    }
}

fn records(bytes: &[u8]) -> Vec<Record> {
    read_all(bytes)
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

fn diff_err(bytes: &[u8]) -> DiffError {
    match read_all(bytes) {
        Err(Error::Diff(e)) => e,
        other => panic!("expected a diff error, got {other:?}"),
    }
}

#[test]
fn reads_a_full_export_from_ceph() {
    let recs = read_all(&fixture("full_s1.diff")).unwrap();
    assert_eq!(recs[0].0, Record::ToSnap("s1".into()));
    assert_eq!(recs[1].0, Record::Size(16 << 20));
    assert_eq!(
        recs[2].0,
        Record::Write {
            offset: 0,
            length: 4096
        }
    );
    assert!(recs[2].1.iter().all(|&b| b == b'A'));
    assert_eq!(recs[3].0, Record::End);
}

#[test]
fn reads_an_incremental_export_from_ceph() {
    assert_eq!(
        records(&fixture("inc_s1_s2.diff")),
        vec![
            Record::FromSnap("s1".into()),
            Record::ToSnap("s2".into()),
            Record::Size(16 << 20),
            Record::Zero {
                offset: 0,
                length: 4096
            },
            Record::Write {
                offset: 4 << 20,
                length: 8192
            },
            Record::End,
        ]
    );
    assert_eq!(fixture("crafted.diff"), fixture("inc_s1_s2.diff"));
}

#[test]
fn reads_a_clone_export_that_includes_parent_data() {
    let recs = records(&fixture("child_full.diff"));
    assert_eq!(recs[0], Record::ToSnap("c1".into()));
    assert!(recs.contains(&Record::Write {
        offset: 4 << 20,
        length: 8192
    }));
}

#[test]
fn our_encoding_of_the_ceph_streams_is_byte_identical() {
    let original = fixture("inc_s1_s2.diff");
    let recs = read_all(&original).unwrap();
    let mut out = encode_header(Some("s1"), Some("s2"), 16 << 20);
    for (rec, data) in &recs {
        match rec {
            Record::Write { offset, length } => {
                out.extend(encode_extent(true, *offset, *length));
                out.extend(data);
            }
            Record::Zero { offset, length } => out.extend(encode_extent(false, *offset, *length)),
            _ => {}
        }
    }
    out.extend(END_RECORD);
    assert_eq!(out, original);
}

#[test]
fn rejects_a_v2_stream_and_a_missing_banner() {
    assert_eq!(diff_err(&fixture("img.v2")), DiffError::BadBanner);
    assert_eq!(diff_err(b"rbd diff"), DiffError::BadBanner);
    assert_eq!(diff_err(b""), DiffError::BadBanner);
}

#[test]
fn rejects_a_stream_truncated_anywhere() {
    let full = fixture("inc_s1_s2.diff");
    // Every proper prefix past the banner is truncated (the last byte is the 'e').
    for cut in [
        BANNER_V1.len(),
        14,
        20,
        30,
        40,
        60,
        full.len() - 100,
        full.len() - 1,
    ] {
        match diff_err(&full[..cut]) {
            DiffError::Truncated { .. } => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn rejects_trailing_garbage_after_the_end() {
    let mut s = fixture("full_s1.diff");
    s.extend_from_slice(b"xyz");
    assert!(matches!(diff_err(&s), DiffError::TrailingData { .. }));
}

fn stream(records: &[Vec<u8>]) -> Vec<u8> {
    let mut s = encode_header(None, Some("t"), 1 << 20);
    for r in records {
        s.extend(r);
    }
    s
}

fn w(offset: u64, len: u64) -> Vec<u8> {
    let mut v = encode_extent(true, offset, len);
    v.extend(std::iter::repeat_n(7u8, len as usize));
    v
}

#[test]
fn rejects_reordered_and_overlapping_extents() {
    let reordered = stream(&[w(8192, 10), w(0, 10), END_RECORD.to_vec()]);
    assert!(matches!(
        diff_err(&reordered),
        DiffError::OutOfOrder { offset: 0, .. }
    ));
    let overlapping = stream(&[
        w(0, 4096),
        encode_extent(false, 4000, 10),
        END_RECORD.to_vec(),
    ]);
    assert!(matches!(
        diff_err(&overlapping),
        DiffError::OutOfOrder {
            offset: 4000,
            prev_end: 4096,
            ..
        }
    ));
    let adjacent = stream(&[
        w(0, 4096),
        encode_extent(false, 4096, 10),
        END_RECORD.to_vec(),
    ]);
    assert!(read_all(&adjacent).is_ok());
}

#[test]
fn rejects_extents_beyond_the_image_size() {
    let past = stream(&[w((1 << 20) - 10, 11), END_RECORD.to_vec()]);
    assert!(matches!(
        diff_err(&past),
        DiffError::BeyondSize { size: 1048576, .. }
    ));
    let wrap = stream(&[encode_extent(false, u64::MAX - 1, 10), END_RECORD.to_vec()]);
    assert!(matches!(diff_err(&wrap), DiffError::BeyondSize { .. }));
}

#[test]
fn rejects_metadata_after_data_duplicates_and_missing_size() {
    let mut late = stream(&[w(0, 10)]);
    late.extend(encode_header(None, None, 5)[BANNER_V1.len()..].to_vec());
    assert!(matches!(
        diff_err(&late),
        DiffError::MetadataAfterData { tag: 's', .. }
    ));

    let mut dup = encode_header(None, Some("a"), 10);
    dup.extend(&encode_header(None, Some("b"), 10)[BANNER_V1.len()..]);
    assert!(matches!(
        diff_err(&dup),
        DiffError::Duplicate { tag: 't', .. }
    ));

    let mut nosize = BANNER_V1.to_vec();
    nosize.extend(encode_extent(false, 0, 10));
    assert!(matches!(diff_err(&nosize), DiffError::MissingSize { .. }));
}

#[test]
fn rejects_unknown_tags_empty_extents_and_oversized_names() {
    let unknown = stream(&[vec![b'p', 1], END_RECORD.to_vec()]);
    assert!(matches!(
        diff_err(&unknown),
        DiffError::UnknownTag { tag: b'p', .. }
    ));

    let empty = stream(&[encode_extent(false, 0, 0), END_RECORD.to_vec()]);
    assert!(matches!(diff_err(&empty), DiffError::EmptyExtent { .. }));

    let mut long = BANNER_V1.to_vec();
    long.push(b't');
    long.extend(5000u32.to_le_bytes());
    long.extend(vec![b'a'; 5000]);
    assert!(matches!(diff_err(&long), DiffError::BadName { .. }));
}

#[test]
fn skips_unread_write_data() {
    let s = stream(&[w(0, 100), w(200, 50), END_RECORD.to_vec()]);
    let mut r = DiffReader::new(&s[..]);
    let mut seen = Vec::new();
    loop {
        let rec = r.next_record().unwrap();
        if rec == Record::End {
            break;
        }
        seen.push(rec);
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(r.position(), s.len() as u64);
}
