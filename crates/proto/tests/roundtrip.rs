//! Round-trip properties: every valid message, of every variant, decodes to itself, alone and
//! inside an envelope, and its encoding is canonical (decode then encode gives the same bytes).
//! Envelopes of every kind round-trip through `Envelope::to_bytes`/`from_bytes`, and only plain
//! ones open with `decode_envelope`.

mod common;

use std::fmt::Debug;

use brine_proto::codec::{BodyKind, Envelope};
use brine_proto::control::{ControlRequest, JobQuery};
use brine_proto::{decode, decode_envelope, encode, encode_envelope, DecodeError, MinionRequest};
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

fn assert_round_trip<T>(x: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode(x);
    let back = decode::<T>(&bytes);
    prop_assert_eq!(back.as_ref(), Ok(x), "bytes: {:02x?}", bytes);
    prop_assert_eq!(&encode(&back.unwrap()), &bytes, "encoding is not canonical");

    let wrapped = encode_envelope(x);
    let back = decode_envelope::<T>(&wrapped);
    prop_assert_eq!(back.as_ref(), Ok(x));
    // The envelope's body is exactly the bare encoding.
    let envelope: Envelope = decode(&wrapped).expect("an envelope decodes as an envelope");
    prop_assert_eq!(envelope.v, brine_proto::PROTOCOL_VERSION);
    prop_assert_eq!(envelope.kind, BodyKind::Plain);
    prop_assert_eq!(envelope.session, None);
    prop_assert_eq!(&envelope.body, &bytes);
    prop_assert_eq!(Envelope::from_bytes(&wrapped), Ok(envelope.clone()));
    prop_assert_eq!(
        &Envelope::new(BodyKind::Plain, None, bytes.clone()).to_bytes(),
        &wrapped
    );
    // The same body under any other kind is refused by `decode_envelope`, never decoded.
    for kind in [BodyKind::Handshake, BodyKind::Sealed, BodyKind::Signed] {
        let other = Envelope::new(kind, Some(7), bytes.clone()).to_bytes();
        prop_assert_eq!(
            decode_envelope::<T>(&other),
            Err(DecodeError::WrongKind(kind))
        );
    }
    Ok(())
}

/// An envelope of this version survives `to_bytes`/`from_bytes` as it is.
fn assert_envelope_round_trip(envelope: &Envelope) -> Result<(), TestCaseError> {
    let bytes = envelope.to_bytes();
    prop_assert_eq!(&bytes, &encode(envelope));
    prop_assert_eq!(Envelope::from_bytes(&bytes), Ok(envelope.clone()));
    // `session` is left out when there is none: old readers of plain envelopes see {v, kind, body}.
    let fields: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
        rmp_serde::from_slice(&bytes).unwrap();
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    if envelope.session.is_some() {
        prop_assert_eq!(names, ["body", "kind", "session", "v"]);
    } else {
        prop_assert_eq!(names, ["body", "kind", "v"]);
    }
    Ok(())
}

proptest! {
    // Publication
    #[test]
    fn publication_job(x in common::publication_job()) { assert_round_trip(&x)?; }
    #[test]
    fn publication_tick(x in common::publication_tick()) { assert_round_trip(&x)?; }

    // MinionRequest
    #[test]
    fn minion_request_master_keys(x in common::request_master_keys()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_group_key(x in common::request_group_key()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_grains(x in common::request_grains()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_hello(x in common::request_hello()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_keepalive(x in common::request_keepalive()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_pending(x in common::request_pending()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_receipt(x in common::request_receipt()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_return(x in common::request_return()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_request_goodbye(x in common::request_goodbye()) { assert_round_trip(&x)?; }

    // MasterReply
    #[test]
    fn master_reply_master_keys(x in common::reply_master_keys()) { assert_round_trip(&x)?; }
    #[test]
    fn master_reply_group_key(x in common::reply_group_key()) { assert_round_trip(&x)?; }
    #[test]
    fn master_reply_welcome(x in common::reply_welcome()) { assert_round_trip(&x)?; }
    #[test]
    fn master_reply_ok(x in common::reply_ok()) { assert_round_trip(&x)?; }
    #[test]
    fn master_reply_jobs(x in common::reply_jobs()) { assert_round_trip(&x)?; }
    #[test]
    fn master_reply_error(x in common::reply_error_msg()) { assert_round_trip(&x)?; }

    // The parts on their own.
    #[test]
    fn job(x in common::job()) { assert_round_trip(&x)?; }
    #[test]
    fn tick(x in common::tick()) { assert_round_trip(&x)?; }
    #[test]
    fn job_return(x in common::job_return()) { assert_round_trip(&x)?; }
    #[test]
    fn envelope(x in common::envelope()) { assert_round_trip(&x)?; }
    #[test]
    fn envelope_to_and_from_bytes(x in common::current_envelope()) {
        assert_envelope_round_trip(&x)?;
    }
    #[test]
    fn envelope_of_any_kind_and_session(
        kind in common::body_kind(),
        session in proptest::option::of(any::<u64>()),
        body in common::bytes(),
    ) {
        assert_envelope_round_trip(&Envelope::new(kind, session, body))?;
    }
    #[test]
    fn envelope_of_another_version_is_unsupported(x in common::envelope()) {
        let bytes = x.to_bytes();
        if x.v == brine_proto::PROTOCOL_VERSION {
            prop_assert_eq!(Envelope::from_bytes(&bytes), Ok(x));
        } else {
            prop_assert_eq!(Envelope::from_bytes(&bytes), Err(DecodeError::UnsupportedVersion(x.v)));
            // Still readable as a bare value, so that a server can see `v` and answer.
            prop_assert_eq!(decode::<Envelope>(&bytes), Ok(x));
        }
    }
    #[test]
    fn publication_header(x in common::publication_header()) { assert_round_trip(&x)?; }
    #[test]
    fn signed_publication(x in common::signed_publication()) { assert_round_trip(&x)?; }
    #[test]
    fn signed_publication_in_a_signed_envelope(
        header in common::publication_header(),
        sig in common::bytes_of(64),
    ) {
        use brine_proto::msg::{PublicationHeader, SignedPublication};
        // The master's layering: header bytes → signed publication → signed envelope.
        let signed = SignedPublication { header: encode(&header), sig };
        let frame = Envelope::new(BodyKind::Signed, None, encode(&signed)).to_bytes();
        let envelope = Envelope::from_bytes(&frame).unwrap();
        prop_assert_eq!(envelope.kind, BodyKind::Signed);
        prop_assert_eq!(envelope.session, None);
        let back: SignedPublication = decode(&envelope.body).unwrap();
        prop_assert_eq!(&back, &signed);
        prop_assert_eq!(decode::<PublicationHeader>(&back.header), Ok(header));
        prop_assert_eq!(
            decode_envelope::<SignedPublication>(&frame),
            Err(DecodeError::WrongKind(BodyKind::Signed))
        );
    }
    #[test]
    fn body_kind(x in common::body_kind()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_id_of_a_request(x in common::minion_request()) {
        let bytes = encode(&x);
        let id = rmp_serde::from_slice::<serde_json::Value>(&bytes).unwrap()["id"].clone();
        match (&x, x.minion_id()) {
            (MinionRequest::MasterKeys {}, None) => {}
            (MinionRequest::MasterKeys {}, Some(id)) => {
                prop_assert!(false, "master_keys speaks for {}", id);
            }
            (_, Some(named)) => prop_assert_eq!(id.as_str(), Some(named.as_str())),
            (_, None) => prop_assert!(false, "{:?} speaks for nobody", x),
        }
    }
    #[test]
    fn target(x in common::target()) { assert_round_trip(&x)?; }
    #[test]
    fn minion_id(x in common::minion_id()) { assert_round_trip(&x)?; }
    #[test]
    fn jid(x in common::jid()) { assert_round_trip(&x)?; }
    #[test]
    fn value(x in common::value()) { assert_round_trip(&x)?; }

    // ControlRequest
    #[test]
    fn control_request_publish(x in common::control_publish()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_lookup_job(x in common::control_lookup_job()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_list_jobs(x in common::control_list_jobs()) { assert_round_trip(&x)?; }
    #[test]
    fn job_query(x in common::job_query()) { assert_round_trip(&x)?; }
    #[test]
    fn an_unfiltered_job_query_is_the_bare_limit(limit in any::<u32>()) {
        // The filters are left out when absent: an unfiltered query is `{type, limit}` alone.
        let tree: serde_json::Value =
            rmp_serde::from_slice(&encode(&ControlRequest::ListJobs(JobQuery::newest(limit)))).unwrap();
        prop_assert_eq!(tree, serde_json::json!({"type": "list_jobs", "limit": limit}));
    }
    #[test]
    fn control_request_active_jobs(x in common::control_active_jobs()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_minions(x in common::control_minions()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_match_target(x in common::control_match_target()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_keys_list(x in common::control_keys_list()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_keys_accept(x in common::control_keys_accept()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_keys_reject(x in common::control_keys_reject()) { assert_round_trip(&x)?; }
    #[test]
    fn control_request_keys_delete(x in common::control_keys_delete()) { assert_round_trip(&x)?; }
    #[test]
    fn key_command(x in common::key_command()) { assert_round_trip(&x)?; }
    #[test]
    fn key_info(x in common::key_info()) { assert_round_trip(&x)?; }

    // ControlEvent
    #[test]
    fn control_event_published(x in common::event_published()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_return(x in common::event_return()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_running(x in common::event_running()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_done(x in common::event_done()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_jobs(x in common::event_jobs()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_active_jobs(x in common::event_active_jobs()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_minions(x in common::event_minions()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_keys(x in common::event_keys()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_error(x in common::event_error()) { assert_round_trip(&x)?; }
}
