//! The frame decoder fed an arbitrary byte stream split at arbitrary points: it never panics,
//! and the frames (and the error, if any) are the same however the stream is split, taken one
//! frame at a time or as runs.

use arbitrary::Arbitrary;
use wire::frame::FrameReader;

#[derive(Arbitrary, Debug)]
struct Input {
    stream: Vec<u8>,
    /// Lengths of the pieces the stream arrives in (cycled; 0 counts as 1).
    splits: Vec<u8>,
}

/// Frames as byte vectors, then the error if one ended the stream.
fn whole(stream: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut reader = FrameReader::new();
    reader.extend(stream);
    let mut frames = Vec::new();
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => frames.push(f.as_bytes().to_vec()),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e.to_string())),
        }
    }
}

pub fn check(data: &[u8]) {
    let Ok(input) =
        <Input as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(data))
    else {
        return;
    };
    let expected = whole(&input.stream);

    // Piece by piece, one frame at a time.
    let mut reader = FrameReader::with_capacity(64);
    let mut frames = Vec::new();
    let mut error = None;
    let mut at = 0;
    let mut piece = 0;
    'feed: while at < input.stream.len() {
        let len = input
            .splits
            .get(piece % input.splits.len().max(1))
            .map_or(input.stream.len(), |&n| usize::from(n).max(1));
        piece += 1;
        let end = (at + len).min(input.stream.len());
        reader
            .buffer_mut()
            .extend_from_slice(&input.stream[at..end]);
        at = end;
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => frames.push(f.as_bytes().to_vec()),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e.to_string());
                    break 'feed;
                }
            }
        }
    }
    assert_eq!((frames, error), expected, "split reading differs");

    // As runs.
    let mut reader = FrameReader::new();
    reader.extend(&input.stream);
    let mut frames = Vec::new();
    let error = loop {
        match reader.next_run() {
            Ok(Some(run)) => {
                for f in run.frames() {
                    frames.push(run.bytes()[f.at..f.end()].to_vec());
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    assert_eq!((frames, error), expected, "runs differ");
}
