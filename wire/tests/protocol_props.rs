//! Properties of the wire protocol, tested with no socket.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wire::call::{put_rewritten, put_with_switch, CallMsg};
use wire::frame::{check, FrameError, MAX_LEN};
use wire::{
    DeviceRef, Frame, FrameReader, Kind, LinkMsg, ResumeAsk, ResumeGrant, Station, StationKind,
    Str8,
};

fn str8() -> impl Strategy<Value = Str8> {
    prop::collection::vec(any::<u8>(), 0..=40).prop_map(|v| Str8::new(v).unwrap())
}

fn station() -> impl Strategy<Value = Station> {
    (str8(), 1u8..=4).prop_map(|(station, k)| Station {
        station,
        kind: StationKind::from_byte(k).unwrap(),
    })
}

fn link_msg() -> impl Strategy<Value = LinkMsg> {
    prop_oneof![
        (any::<u8>(), str8()).prop_map(|(version, name)| LinkMsg::Open { version, name }),
        (any::<u8>(), str8(), str8(), any::<[u8; 6]>(), any::<u8>()).prop_map(
            |(result, model, software, mac, caps)| LinkMsg::OpenResult {
                result,
                model,
                software,
                mac,
                caps
            }
        ),
        Just(LinkMsg::MacQuery),
        any::<[u8; 6]>().prop_map(|mac| LinkMsg::MacReply { mac }),
        str8().prop_map(|password| LinkMsg::ConfigDownload { password }),
        (
            any::<u8>(),
            any::<bool>(),
            prop::collection::vec(station(), 0..20)
        )
            .prop_map(|(result, last, stations)| LinkMsg::ConfigPage {
                result,
                last,
                stations
            }),
        Just(LinkMsg::Heartbeat),
        Just(LinkMsg::HeartbeatReply),
        (
            any::<u8>(),
            any::<u8>(),
            str8(),
            prop::collection::vec(
                (any::<u8>(), str8()).prop_map(|(switch, device)| DeviceRef { switch, device }),
                0..20
            ),
            prop::option::of(
                (any::<[u8; 16]>(), sequences())
                    .prop_map(|(token, last)| ResumeAsk { token, last })
            )
        )
            .prop_map(
                |(protocol, product, app_name, devices, resume)| LinkMsg::Identify {
                    protocol,
                    product,
                    app_name,
                    devices,
                    resume
                }
            ),
        (
            any::<u8>(),
            prop::collection::vec((any::<u8>(), any::<bool>()), 0..=8),
            prop::option::of((any::<[u8; 16]>(), any::<bool>(), sequences()).prop_map(
                |(token, resumed, last)| ResumeGrant {
                    token,
                    resumed,
                    last
                }
            ))
        )
            .prop_map(|(result, switches, resume)| LinkMsg::IdentifyResult {
                result,
                switches,
                resume
            }),
        (any::<u8>(), any::<u64>()).prop_map(|(switch, seq)| LinkMsg::Sequence { switch, seq }),
        (any::<u8>(), any::<u64>()).prop_map(|(switch, lost)| LinkMsg::Lost { switch, lost }),
        (any::<bool>(), any::<u8>(), str8()).prop_map(|(add, switch, device)| LinkMsg::Device {
            add,
            switch,
            device
        }),
        any::<u8>().prop_map(|result| LinkMsg::DeviceResult { result }),
        (any::<u8>(), any::<bool>()).prop_map(|(switch, up)| LinkMsg::SwitchState { switch, up }),
        (any::<u8>(), str8()).prop_map(|(reason, text)| LinkMsg::Close { reason, text }),
        str8().prop_map(|password| LinkMsg::Password { password }),
        any::<u8>().prop_map(|result| LinkMsg::PasswordResult { result }),
    ]
}

fn call_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Request),
        Just(Kind::Answer),
        Just(Kind::Event),
        Just(Kind::Smdr),
        Just(Kind::Ucd),
    ]
}

fn call_msg(p3: bool) -> impl Strategy<Value = CallMsg> {
    (
        call_kind(),
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(move |(kind, code, invoke, sw, body)| CallMsg {
            kind,
            code,
            invoke,
            switch: (p3 && kind.carries_switch_byte()).then_some(sw),
            body: Bytes::from(body),
        })
}

/// Decodes a stream delivered in the given pieces: every frame, then the error if any.
fn decode_split(stream: &[u8], cuts: &[usize]) -> (Vec<Bytes>, Option<FrameError>) {
    let mut reader = FrameReader::new();
    let mut frames = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    bounds.push(0);
    bounds.push(stream.len());
    bounds.sort_unstable();
    for pair in bounds.windows(2) {
        reader.extend(&stream[pair[0]..pair[1]]);
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => frames.push(f.into_bytes()),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_link_message_round_trips(msg in link_msg()) {
        let bytes = msg.encode().unwrap();
        let frame = Frame::new(bytes).unwrap();
        prop_assert_eq!(frame.kind(), Kind::Link);
        prop_assert_eq!(frame.invoke(), 0xFFFF);
        prop_assert_eq!(LinkMsg::decode(&frame).unwrap(), msg);
    }

    #[test]
    fn every_call_message_round_trips_in_both_forms(p3 in any::<bool>(), msg in call_msg(false), sw in any::<u8>()) {
        let mut msg = msg;
        if p3 && msg.kind.carries_switch_byte() {
            msg.switch = Some(sw);
        }
        let frame = Frame::new(msg.encode().unwrap()).unwrap();
        prop_assert_eq!(CallMsg::decode(&frame, p3).unwrap(), msg);
    }

    #[test]
    fn switch_byte_insertion_and_stripping_are_inverse(msg in call_msg(false), sw in 1u8..=8, new_invoke in any::<u16>()) {
        let original = Frame::new(msg.encode().unwrap()).unwrap();
        let mut with = BytesMut::new();
        put_with_switch(&mut with, original.as_bytes(), sw, None).unwrap();
        let p3 = Frame::new(with.freeze()).unwrap();
        let decoded = CallMsg::decode(&p3, true).unwrap();
        if msg.kind.carries_switch_byte() {
            prop_assert_eq!(decoded.switch, Some(sw));
            prop_assert_eq!(&decoded.body, &msg.body);
        }
        let mut back = BytesMut::new();
        put_rewritten(&mut back, &p3, msg.invoke, true);
        prop_assert_eq!(back.as_ref(), original.as_bytes());
        // Rewriting INVOKE alone changes only bytes 4..6.
        let mut re = BytesMut::new();
        put_rewritten(&mut re, &original, new_invoke, false);
        prop_assert_eq!(&re[..4], &original.as_bytes()[..4]);
        prop_assert_eq!(&re[4..6], &new_invoke.to_be_bytes()[..]);
        prop_assert_eq!(&re[6..], &original.as_bytes()[6..]);
    }

    #[test]
    fn a_stream_split_anywhere_decodes_as_when_whole(
        msgs in prop::collection::vec(call_msg(true), 0..12),
        tail in prop::collection::vec(any::<u8>(), 0..24),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(&m.encode().unwrap());
        }
        stream.extend_from_slice(&tail);
        let whole = decode_split(&stream, &[]);
        let split = decode_split(&stream, &cuts);
        prop_assert_eq!(&whole, &split);
        prop_assert!(whole.0.len() >= msgs.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_does_not_matter(
        stream in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let whole = decode_split(&stream, &[]);
        prop_assert_eq!(&whole, &decode_split(&stream, &cuts));
        for f in whole.0 {
            let frame = Frame::new(f).unwrap();
            let _ = LinkMsg::decode(&frame);
            let _ = CallMsg::decode(&frame, true);
        }
    }

    #[test]
    fn runs_hold_the_same_frames_as_single_reads(msgs in prop::collection::vec(call_msg(false), 1..20)) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(&m.encode().unwrap());
        }
        let mut reader = FrameReader::new();
        reader.extend(&stream);
        let run = reader.next_run().unwrap().unwrap();
        prop_assert_eq!(run.bytes().as_ref(), &stream[..]);
        let frames: Vec<CallMsg> = run.frames().map(|f| CallMsg::decode(&run.frame(&f), false).unwrap()).collect();
        prop_assert_eq!(frames, msgs);
    }

    #[test]
    fn the_events_buffered_are_those_of_the_next_run(
        msgs in prop::collection::vec((call_msg(false), any::<bool>()), 1..20),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        for (m, heartbeat_after) in &msgs {
            stream.extend_from_slice(&m.encode().unwrap());
            if *heartbeat_after {
                stream.extend_from_slice(&LinkMsg::Heartbeat.encode().unwrap());
            }
        }
        // A partial frame at the end counts for nothing until it is whole.
        let cut = cut.index(stream.len() + 1);
        let mut reader = FrameReader::new();
        reader.extend(&stream[..cut]);
        let counted = reader.events_buffered();
        let in_run = match reader.next_run().unwrap() {
            Some(run) => run.frames().filter(|f| f.kind == Kind::Event).count() as u64,
            None => 0,
        };
        prop_assert_eq!(counted, in_run);
        prop_assert_eq!(reader.events_buffered(), 0);
    }

    #[test]
    fn a_run_within_a_count_stops_before_the_first_event_beyond_it(
        msgs in prop::collection::vec((call_msg(false), any::<bool>()), 1..20),
        limit in 0u64..8,
    ) {
        let mut stream = Vec::new();
        for (m, heartbeat_after) in &msgs {
            stream.extend_from_slice(&m.encode().unwrap());
            if *heartbeat_after {
                stream.extend_from_slice(&LinkMsg::Heartbeat.encode().unwrap());
            }
        }
        let mut reader = FrameReader::new();
        reader.extend(&stream);
        let total = reader.events_buffered();
        let first = reader.next_run_within(limit).unwrap();
        let events = |run: &Option<wire::frame::Run>| {
            run.as_ref().map_or(0, |r| r.frames().filter(|f| f.kind == Kind::Event).count() as u64)
        };
        prop_assert_eq!(events(&first), total.min(limit));
        let rest = reader.next_run().unwrap();
        // What is left starts with the first event beyond the count, and nothing is lost.
        if let Some(rest) = &rest {
            prop_assert_eq!(rest.frames().next().map(|f| f.kind), Some(Kind::Event));
        }
        let mut whole = Vec::new();
        for run in [&first, &rest].into_iter().flatten() {
            whole.extend_from_slice(run.bytes());
        }
        prop_assert_eq!(whole, stream);
    }
}

#[test]
fn len_below_4_is_a_protocol_error() {
    for len in 0u16..4 {
        let mut b = len.to_be_bytes().to_vec();
        b.extend_from_slice(b"L");
        assert_eq!(check(&b), Err(FrameError::LenOutOfRange(len)), "LEN {len}");
    }
}

#[test]
fn len_above_4094_is_a_protocol_error() {
    assert_eq!(check(&4094u16.to_be_bytes()), Ok(None));
    for len in [4095u16, 4096, 0xFFFF] {
        assert_eq!(
            check(&len.to_be_bytes()),
            Err(FrameError::LenOutOfRange(len))
        );
    }
    assert_eq!(MAX_LEN, 4094);
}

#[test]
fn an_unknown_kind_is_a_protocol_error_as_soon_as_its_byte_arrives() {
    assert_eq!(check(&[0, 4, b'Z']), Err(FrameError::UnknownKind(b'Z')));
    let mut reader = FrameReader::new();
    reader.extend(&[0, 4, b'E', b'x', 0xFF, 0xFF, 0, 4, b'?']);
    assert_eq!(reader.next_frame().unwrap().unwrap().code(), b'x');
    assert_eq!(reader.next_frame(), Err(FrameError::UnknownKind(b'?')));
}

#[test]
fn a_maximal_event_cannot_take_the_switch_byte() {
    let msg = CallMsg {
        kind: Kind::Event,
        code: b'n',
        invoke: 0xFFFF,
        switch: None,
        body: Bytes::from(vec![0u8; 4090]),
    };
    let frame = msg.encode().unwrap();
    assert_eq!(frame.len(), 4096);
    let mut out = BytesMut::new();
    assert!(put_with_switch(&mut out, &frame, 1, None).is_err());
}

#[test]
fn a_body_beyond_one_frame_is_refused_not_a_panic() {
    let msg = |switch, len| CallMsg {
        kind: Kind::Request,
        code: b'K',
        invoke: 1,
        switch,
        body: Bytes::from(vec![0u8; len]),
    };
    assert_eq!(msg(Some(1), 4089).encode().unwrap().len(), 4096);
    assert_eq!(
        msg(Some(1), 4090).encode(),
        Err(wire::call::CallError::TooLarge {
            kind: Kind::Request,
            body: 4091
        })
    );
    assert_eq!(
        msg(None, 5120).encode().unwrap_err().to_string(),
        "a body of 5120 bytes does not fit in one frame (at most 4090 bytes)"
    );
}

#[test]
fn link_messages_refuse_truncation_and_trailing_bytes() {
    let open = LinkMsg::Open {
        version: 3,
        name: Str8::from("x"),
    }
    .encode()
    .unwrap();
    // Drop the last byte and fix LEN.
    let mut short = open[..open.len() - 1].to_vec();
    short[1] -= 1;
    let err = LinkMsg::decode(&Frame::new(Bytes::from(short)).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "link-control 'O' is truncated");
    let mut long = open.to_vec();
    long.push(0);
    long[1] += 1;
    let err = LinkMsg::decode(&Frame::new(Bytes::from(long)).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "link-control 'O' has 1 unexpected trailing byte(s)"
    );
}

fn sequences() -> impl Strategy<Value = Vec<(u8, u64)>> {
    prop::collection::vec((any::<u8>(), any::<u64>()), 0..=8)
}

#[test]
fn resumable_identify_and_its_result_encode_to_the_documented_bytes() {
    let mut token = [0u8; 16];
    token[15] = 7;
    let ask = LinkMsg::Identify {
        protocol: 2,
        product: 1,
        app_name: Str8::from("C"),
        devices: Vec::new(),
        resume: Some(ResumeAsk {
            token,
            last: vec![(1, 258)],
        }),
    }
    .encode()
    .unwrap();
    let mut want = vec![0, 35, b'L', b'I', 0xFF, 0xFF, 2, 1, 1, b'C', 0];
    want.extend_from_slice(&token);
    want.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(ask.as_ref(), &want[..]);

    let grant = LinkMsg::IdentifyResult {
        result: 0,
        switches: vec![(1, true)],
        resume: Some(ResumeGrant {
            token,
            resumed: true,
            last: vec![(1, 300)],
        }),
    }
    .encode()
    .unwrap();
    let mut want = vec![0, 35, b'L', b'i', 0xFF, 0xFF, 0, 1, 1, 1];
    want.extend_from_slice(&token);
    want.extend_from_slice(&[1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 44]);
    assert_eq!(grant.as_ref(), &want[..]);

    let seq = LinkMsg::Sequence { switch: 2, seq: 5 }.encode().unwrap();
    assert_eq!(
        seq.as_ref(),
        &[0, 13, b'L', b'N', 0xFF, 0xFF, 2, 0, 0, 0, 0, 0, 0, 0, 5]
    );
    let mut put = BytesMut::new();
    wire::link::put_sequence(&mut put, 2, 5);
    assert_eq!(put.as_ref(), seq.as_ref());
    assert_eq!(put.len(), wire::link::SEQUENCE_FRAME_LEN);
    // Read back from the front of a run, and refused for anything else or a piece of one.
    put.extend_from_slice(b"more");
    assert_eq!(wire::link::sequence_at(&put), Some(5));
    assert_eq!(wire::link::sequence_at(&put[..14]), None);
    assert_eq!(wire::link::sequence_at(&put[1..]), None);
    let lost = LinkMsg::Lost { switch: 2, lost: 5 }.encode().unwrap();
    assert_eq!(wire::link::sequence_at(&lost), None);
    assert_eq!(
        lost.as_ref(),
        &[0, 13, b'L', b'G', 0xFF, 0xFF, 2, 0, 0, 0, 0, 0, 0, 0, 5]
    );
    let mut put = BytesMut::new();
    wire::link::put_lost(&mut put, 2, 5);
    assert_eq!(put.as_ref(), lost.as_ref());
}

#[test]
fn identify_encodes_to_the_documented_bytes() {
    let bytes = LinkMsg::Identify {
        protocol: 3,
        product: 1,
        app_name: Str8::from("Call"),
        devices: vec![DeviceRef {
            switch: 0,
            device: Str8::from("2201"),
        }],
        resume: None,
    }
    .encode()
    .unwrap();
    assert_eq!(
        bytes.as_ref(),
        &[
            0, 18, b'L', b'I', 0xFF, 0xFF, 3, 1, 4, b'C', b'a', b'l', b'l', 1, 0, 4, b'2', b'2',
            b'0', b'1'
        ]
    );
}

#[test]
fn a_run_is_whole_frames_back_to_back_or_nothing() {
    use wire::frame::Run;
    let one = Frame::build(
        Kind::Event,
        b'n',
        wire::NO_INVOKE,
        &[4, b'2', b'2', b'0', b'1'],
    );
    let mut two = one.as_bytes().to_vec();
    two.extend_from_slice(one.as_bytes());
    let run = Run::whole(Bytes::from(two.clone())).expect("two whole frames");
    let lens: Vec<usize> = run.frames().map(|f| f.len).collect();
    assert_eq!(lens, vec![one.as_bytes().len(); 2]);
    // A cut-off frame, a bad LEN, or nothing at all is not a run.
    assert!(Run::whole(Bytes::from(two[..two.len() - 1].to_vec())).is_none());
    assert!(Run::whole(Bytes::from_static(&[0, 2, b'E', b'n'])).is_none());
    assert!(Run::whole(Bytes::new()).is_none());
}
