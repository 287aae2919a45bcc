//! A browser form upload's body and policy: the multipart parser (`post_upload::form`) and the
//! policy's parser and checks (`post_upload::policy`). None may panic; the parser reads the same
//! form however the body is cut into pieces (the network decides the pieces), and never accepts
//! more than the 20 KB cap before the file.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use s3ferry::post_upload::form::{FormError, FormEvent, MAX_PRE_FILE_BYTES, parse_all};
use s3ferry::post_upload::policy::{FormFields, check_policy, parse_policy};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    boundary: &'a str,
    body: &'a [u8],
    cuts: Vec<u16>,
    policy: &'a str,
    filename: &'a str,
}

/// Fields, file bytes, and whether the file ended, with the file's pieces joined.
fn joined(events: Vec<FormEvent>) -> (Vec<(String, String)>, Vec<u8>, bool) {
    let (mut fields, mut data, mut ended) = (Vec::new(), Vec::new(), false);
    for event in events {
        match event {
            FormEvent::Field { name, value } => fields.push((name, value)),
            FormEvent::FileStart { .. } => {}
            FormEvent::FileData(bytes) => data.extend_from_slice(&bytes),
            FormEvent::FileEnd => ended = true,
        }
    }
    (fields, data, ended)
}

fuzz_target!(|input: Input<'_>| {
    let boundary = if input.boundary.is_empty() { "b" } else { input.boundary };
    let whole = parse_all(boundary, &[input.body]);
    let mut cuts: Vec<usize> = input
        .cuts
        .iter()
        .map(|c| usize::from(*c) % (input.body.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in cuts {
        pieces.push(&input.body[from..cut]);
        from = cut;
    }
    pieces.push(&input.body[from..]);
    let split = parse_all(boundary, &pieces);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(joined(a.clone()), joined(b.clone()), "the pieces change the form"),
        (Err(FormError::PreFileTooLarge), _) | (_, Err(FormError::PreFileTooLarge)) => {}
        (Err(_), Err(_)) => {}
        _ => panic!("whole {whole:?} but split {split:?}"),
    }
    if let Ok(events) = &whole {
        let fields: usize = events
            .iter()
            .map(|e| match e {
                FormEvent::Field { name, value } => name.len() + value.len(),
                _ => 0,
            })
            .sum();
        assert!(fields <= MAX_PRE_FILE_BYTES, "{fields} bytes of fields accepted");
        if let Ok(policy) = parse_policy(input.policy) {
            let mut form = FormFields::default();
            for event in events {
                if let FormEvent::Field { name, value } = event {
                    let _ = form.add(name, value.clone());
                }
            }
            let _ = check_policy(
                &policy,
                &form,
                "bucket",
                input.filename,
                time::OffsetDateTime::now_utc(),
            );
        }
    }
});
