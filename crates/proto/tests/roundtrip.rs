//! Round-trip properties: every valid message, of every variant, decodes to itself, alone and
//! inside an envelope, and its encoding is canonical (decode then encode gives the same bytes).

mod common;

use std::fmt::Debug;

use brine_proto::codec::Envelope;
use brine_proto::{decode, decode_envelope, encode, encode_envelope};
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
    prop_assert_eq!(envelope.body, bytes);
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
    fn control_request_minions(x in common::control_minions()) { assert_round_trip(&x)?; }

    // ControlEvent
    #[test]
    fn control_event_published(x in common::event_published()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_return(x in common::event_return()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_done(x in common::event_done()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_jobs(x in common::event_jobs()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_minions(x in common::event_minions()) { assert_round_trip(&x)?; }
    #[test]
    fn control_event_error(x in common::event_error()) { assert_round_trip(&x)?; }
}
