//! The authenticated channel from the master's side: what a minion with an accepted key may and
//! may not do, driven by a raw client speaking the protocol with real keys.

use brine_proto::codec::BodyKind;
use brine_proto::control::{ControlEvent, ControlRequest, PublishRequest};
use brine_proto::msg::ReplyError;
use brine_proto::{
    decode, encode, Envelope, JobReturn, Map, MasterReply, MinionId, MinionRequest, Target, Value,
};
use brine_tests::raw_minion::RawMinion;
use brine_tests::{within, TestMaster, TestMinion};
use zeromq::{Socket, SocketRecv};

fn code(reply: &MasterReply) -> Option<ReplyError> {
    match reply {
        MasterReply::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_but_master_keys_is_served_before_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let mut raw = RawMinion::connect(master.ret_port).await;
    let public = raw.master_keys().await;
    assert_eq!(public.fingerprint().to_string(), master.fingerprint);

    let keepalive = MinionRequest::Keepalive {
        id: MinionId::new("m1").unwrap(),
    };
    let reply = raw
        .send_raw(Envelope::new(BodyKind::Plain, None, encode(&keepalive)))
        .await;
    assert_eq!(code(&reply), Some(ReplyError::Malformed), "{reply:?}");
    let reply = raw
        .send_raw(Envelope::new(BodyKind::Sealed, Some(12345), vec![1, 2, 3]))
        .await;
    assert_eq!(code(&reply), Some(ReplyError::NoSession), "{reply:?}");
    let reply = raw
        .send_raw(Envelope::new(BodyKind::Handshake, None, vec![0; 200]))
        .await;
    assert_eq!(code(&reply), Some(ReplyError::Malformed), "{reply:?}");
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_cannot_speak_for_another_id_or_report_jobs_it_was_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let victim = master.start_minions(dir.path(), &["victim"]);
    master.wait_connected(&["victim"]).await;

    let mut raw = RawMinion::connect(master.ret_port).await;
    let reply = raw.hello("mallory").await;
    assert!(
        matches!(reply, MasterReply::Welcome { .. }),
        "auto-accepted: {reply:?}"
    );

    // A job for the victim only.
    let events = master
        .control(ControlRequest::Publish(PublishRequest {
            target: Target::Glob("victim".into()),
            fun: brine_proto::FunctionName::new("test.sleep").unwrap(),
            arg: vec![Value::from(1)],
            kwarg: Map::new(),
            timeout_ms: 5_000,
            wait: false,
        }))
        .await;
    let Some(ControlEvent::Published { jid, .. }) = events.first() else {
        panic!("{events:?}");
    };

    let victim_id = MinionId::new("victim").unwrap();
    let forged = JobReturn::new(victim_id, jid.clone(), "test.sleep", "owned");
    let (_, reply) = raw.ask(&MinionRequest::Return(forged.clone())).await;
    assert_eq!(
        code(&reply),
        Some(ReplyError::Refused),
        "another id: {reply:?}"
    );
    let own = JobReturn {
        id: MinionId::new("mallory").unwrap(),
        ..forged
    };
    let (_, reply) = raw.ask(&MinionRequest::Return(own)).await;
    assert_eq!(
        code(&reply),
        Some(ReplyError::Refused),
        "not targeted: {reply:?}"
    );

    // The victim's real return is what the job records.
    let events = master
        .control(ControlRequest::LookupJob {
            jid: jid.clone(),
            wait: true,
        })
        .await;
    let report = brine_tests::report(&events);
    assert_eq!(report.minions.len(), 1);
    assert_eq!(
        report.minions[0].ret.as_ref().unwrap().ret,
        Value::Bool(true)
    );

    TestMinion::stop_all(victim).await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_sealed_request_is_refused_and_the_session_survives() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let mut raw = RawMinion::connect(master.ret_port).await;
    assert!(matches!(raw.hello("m1").await, MasterReply::Welcome { .. }));
    let keepalive = MinionRequest::Keepalive {
        id: MinionId::new("m1").unwrap(),
    };
    let (sealed, reply) = raw.ask(&keepalive).await;
    assert_eq!(reply, MasterReply::Ok {});

    let sid = raw.session.as_ref().unwrap().0;
    let reply = raw
        .send_raw(Envelope::new(BodyKind::Sealed, Some(sid), sealed))
        .await;
    assert_eq!(
        code(&reply),
        Some(ReplyError::Malformed),
        "replay: {reply:?}"
    );
    // The genuine minion carries on in the same session.
    let (_, reply) = raw.ask(&keepalive).await;
    assert_eq!(reply, MasterReply::Ok {});
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_minion_cannot_read_the_next_publication_and_the_others_can() {
    use brine_proto::control::{KeyCommand, KeySelection};
    use brine_proto::msg::{PublicationHeader, SignedPublication, PUBLICATION_AAD};
    use zeromq::SubSocket;

    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let others = master.start_minions(dir.path(), &["stays1", "stays2"]);
    master.wait_connected(&["stays1", "stays2"]).await;

    let mut raw = RawMinion::connect(master.ret_port).await;
    let MasterReply::Welcome {
        group_epoch,
        group_key,
        ..
    } = raw.hello("leaver").await
    else {
        panic!("not welcomed");
    };
    let old = brine_crypto::GroupKey::from_bytes(group_epoch, group_key.try_into().unwrap());
    let mut sub = SubSocket::new();
    sub.subscribe("").await.unwrap();
    within(
        "subscribing",
        sub.connect(&format!("tcp://127.0.0.1:{}", master.publish_port)),
    )
    .await
    .unwrap();

    let events = master
        .control(ControlRequest::Keys(KeyCommand::Reject(KeySelection::id(
            &MinionId::new("leaver").unwrap(),
        ))))
        .await;
    assert!(
        matches!(events.first(), Some(ControlEvent::Keys { .. })),
        "{events:?}"
    );

    // The next job: the two others answer (they fetch the new group key over their sessions).
    master.ping_all(2).await;

    // What the leaver hears on PUB from now on is under a newer epoch it cannot open.
    let master_public = raw.master.unwrap();
    within("a publication under the new key", async {
        loop {
            let message = sub.recv().await.unwrap();
            let envelope = Envelope::from_bytes(&message.into_vec()[1]).unwrap();
            let signed: SignedPublication = decode(&envelope.body).unwrap();
            master_public.verify(&signed.header, &signed.sig).unwrap();
            let header: PublicationHeader = decode(&signed.header).unwrap();
            if header.group_epoch > old.epoch() {
                let as_old =
                    brine_crypto::GroupKey::from_bytes(header.group_epoch, old.key_bytes());
                assert!(as_old
                    .decrypt(&header.nonce, &header.ciphertext, PUBLICATION_AAD)
                    .is_err());
                assert!(old
                    .decrypt(&header.nonce, &header.ciphertext, PUBLICATION_AAD)
                    .is_err());
                return;
            }
        }
    })
    .await;
    // And its session is gone: it must handshake again, and is refused.
    let (_, reply) = raw
        .ask(&MinionRequest::Keepalive {
            id: MinionId::new("leaver").unwrap(),
        })
        .await;
    assert_eq!(code(&reply), Some(ReplyError::NoSession), "{reply:?}");
    raw.session = None;
    assert_eq!(code(&raw.hello("leaver").await), Some(ReplyError::Rejected));

    TestMinion::stop_all(others).await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_announcing_a_minions_zmtp_identity_takes_nothing_away() {
    use zeromq::{SocketOptions, SubSocket};

    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let minions = master.start_minions(dir.path(), &["m1"]);
    master.wait_connected(&["m1"]).await;

    // A second subscriber claiming m1's identity (brine never sets or trusts one).
    let mut options = SocketOptions::default();
    options.peer_identity(b"m1".to_vec().try_into().unwrap());
    let mut thief = SubSocket::with_options(options);
    thief.subscribe("").await.unwrap();
    within(
        "the thief subscribing",
        thief.connect(&format!("tcp://127.0.0.1:{}", master.publish_port)),
    )
    .await
    .unwrap();
    // Once the thief provably receives publications, m1 must still get its jobs.
    within("the thief hearing a tick", thief.recv())
        .await
        .unwrap();
    master.ping_all(1).await;
    master.ping_all(1).await;

    TestMinion::stop_all(minions).await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_hello_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let mut minion = RawMinion::connect(master.ret_port).await;
    assert!(matches!(
        minion.hello("m1").await,
        MasterReply::Welcome { .. }
    ));
    let keepalive = MinionRequest::Keepalive {
        id: MinionId::new("m1").unwrap(),
    };
    assert_eq!(minion.ask(&keepalive).await.1, MasterReply::Ok {});

    // An eavesdropper replays the recorded handshake message, again and again.
    let mut eavesdropper = RawMinion::connect(master.ret_port).await;
    for _ in 0..6 {
        let answer = eavesdropper
            .exchange(Envelope::new(
                BodyKind::Handshake,
                None,
                minion.last_msg1.clone(),
            ))
            .await;
        assert_eq!(answer.kind, BodyKind::Handshake, "{answer:?}");
    }
    // The real minion's session is untouched.
    assert_eq!(minion.ask(&keepalive).await.1, MasterReply::Ok {});
    assert_eq!(minion.ask(&keepalive).await.1, MasterReply::Ok {});
    master.stop().await;
}
