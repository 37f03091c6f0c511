//! Scenario 4: two users, each with an SDK client syncing through the SyncService (room list + the
//! encryption sliding sync: to-device, device lists, one-time keys), bootstrap cross-signing, verify
//! each other's device with SAS (emoji) over to-device messages, and exchange messages in an
//! encrypted room that both decrypt.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use matrix_sdk::{
    encryption::verification::{SasVerification, Verification, VerificationRequest},
    ruma::events::room::message::RoomMessageEventContent,
};
use matrix_sdk_ui::timeline::RoomExt;

use crate::common::{
    Api, bootstrap_cross_signing, create_encrypted_room, eventually, init_tracing, join_when_invited,
    login, start_sync, unique, wait_for_message,
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_e2ee_sas_emoji_verification_then_encrypted_messages_both_decrypt() -> Result<()> {
    init_tracing();
    let alice_api = Api::register(&unique("s4alice")).await?;
    let bob_api = Api::register(&unique("s4bob")).await?;
    let alice = login(&alice_api.localpart, "s4 alice sdk").await?;
    let bob = login(&bob_api.localpart, "s4 bob sdk").await?;
    let (a, b) = (alice.client.clone(), bob.client.clone());
    bootstrap_cross_signing(&a, &alice_api.localpart).await?;
    bootstrap_cross_signing(&b, &bob_api.localpart).await?;
    let alice_sync = start_sync(&a).await?;
    let bob_sync = start_sync(&b).await?;
    let alice_id = a.user_id().context("alice id")?.to_owned();
    let bob_id = b.user_id().context("bob id")?.to_owned();
    let bob_device = b.device_id().context("bob device")?.to_owned();

    // An encrypted DM; sharing it makes each track the other's devices.
    let room = create_encrypted_room(&a, "s4 encrypted", &[&bob_id]).await?;
    let room_id = room.room_id().to_owned();
    join_when_invited(&b, &room_id).await?;
    room.sync_members().await?;

    // Alice requests the verification of bob's device (to-device m.key.verification.request).
    // Each must know the other's device, or the crypto ignores the request ("Could not retrieve the
    // device data for the incoming verification request"). The members' keys are queried from the
    // next encryption sync on, which may be a 30 s long-poll away: ask for them now, as Element X's
    // user profile does (a /keys/query of that user).
    let device = known_device(&a, &bob_id, &bob_device).await.context("bob's device at alice")?;
    let alice_device = a.device_id().context("alice device")?.to_owned();
    known_device(&b, &alice_id, &alice_device).await.context("alice's device at bob")?;
    let alice_request = device.request_verification().await?;
    let flow_id = alice_request.flow_id().to_owned();

    let bob_request: VerificationRequest = eventually("the verification request at bob", WAIT, || async {
        b.encryption().get_verification_request(&alice_id, &flow_id).await.ok_or("not yet".to_owned())
    })
    .await?;
    bob_request.accept().await?;
    eventually("alice's request ready (m.key.verification.ready)", WAIT, || async {
        if alice_request.is_ready() { Ok(()) } else { Err(format!("{:?}", alice_request.state())) }
    })
    .await?;
    let alice_sas: SasVerification = alice_request.start_sas().await?.context("start_sas gave no SAS")?;
    let bob_sas: SasVerification = eventually("the SAS at bob (m.key.verification.start)", WAIT, || async {
        match b.encryption().get_verification(&alice_id, &flow_id).await {
            Some(Verification::SasV1(sas)) => Ok(sas),
            other => Err(format!("{:?}", other.map(|_| "not SAS"))),
        }
    })
    .await?;
    bob_sas.accept().await?;
    for (who, sas) in [("alice", &alice_sas), ("bob", &bob_sas)] {
        eventually(&format!("{who}'s emoji (key exchange)"), WAIT, || async {
            if sas.can_be_presented() { Ok(()) } else { Err(format!("{:?}", sas.state())) }
        })
        .await?;
    }
    let alice_emoji: Vec<&str> = alice_sas.emoji().context("alice: no emoji")?.iter().map(|e| e.symbol).collect();
    let bob_emoji: Vec<&str> = bob_sas.emoji().context("bob: no emoji")?.iter().map(|e| e.symbol).collect();
    ensure!(alice_emoji == bob_emoji, "the emoji differ: alice {alice_emoji:?}, bob {bob_emoji:?}");
    eprintln!("s4: both see {}", alice_emoji.join(" "));
    alice_sas.confirm().await?;
    bob_sas.confirm().await?;
    for (who, sas) in [("alice", &alice_sas), ("bob", &bob_sas)] {
        eventually(&format!("{who}'s SAS done (mac, done)"), WAIT, || async {
            if sas.is_done() {
                Ok(())
            } else if sas.is_cancelled() {
                Err(format!("cancelled: {:?}", sas.cancel_info()))
            } else {
                Err(format!("{:?}", sas.state()))
            }
        })
        .await?;
    }
    // Both had cross-signing: the SAS MACs cover the master keys, so each now trusts the other's
    // identity (signed with its user-signing key, uploaded with /keys/signatures/upload, read back
    // with /keys/query), and through it the other's device. The signatures go up after is_done().
    for (who, client, other, other_device) in [("alice", &a, &bob_id, &bob_device), ("bob", &b, &alice_id, &alice_device)] {
        eventually(&format!("{who} trusts {other}'s identity and device"), WAIT, || async {
            let encryption = client.encryption();
            let identity = encryption.get_user_identity(other).await.map_err(|e| e.to_string())?;
            let device = encryption.get_device(other, other_device).await.map_err(|e| e.to_string())?;
            let identity_verified = identity.as_ref().is_some_and(|i| i.is_verified());
            let device_verified = device.as_ref().is_some_and(|d| d.is_verified());
            if identity_verified && device_verified {
                return Ok(());
            }
            encryption.request_user_identity(other).await.map_err(|e| e.to_string())?;
            Err(format!("identity verified: {identity_verified}, device verified: {device_verified}"))
        })
        .await?;
    }

    // A DM for alice (m.direct account data set by her SDK on creation, back through the account
    // data extension). Bob's SDK marks it only if the room is still Invited when its /join answer
    // is handled: with a fast server the sync's join often comes first (an SDK race), so not checked.
    eventually("the room is a DM for alice", WAIT, || async {
        let room = a.get_room(&room_id).ok_or("no room")?;
        if room.is_direct().await.map_err(|e| e.to_string())? { Ok(()) } else { Err("not direct".to_owned()) }
    })
    .await?;

    // Encrypted messages, both ways.
    let alice_room = a.get_room(&room_id).context("alice's room")?;
    let bob_room = b.get_room(&room_id).context("bob's room")?;
    ensure!(alice_room.latest_encryption_state().await?.is_encrypted(), "the room is not encrypted at alice");
    let alice_timeline = alice_room.timeline().await?;
    let bob_timeline = bob_room.timeline().await?;
    let sent = alice_room.send(RoomMessageEventContent::text_plain("secret from alice")).await?;
    ensure!(sent.encryption_info.is_some(), "alice's message was not sent encrypted");
    let at_bob = wait_for_message(&bob_timeline, "secret from alice", WAIT).await?;
    ensure!(at_bob.encryption_info().is_some(), "bob's item for alice's message has no encryption info");
    bob_room.send(RoomMessageEventContent::text_plain("secret from bob")).await?;
    let at_alice = wait_for_message(&alice_timeline, "secret from bob", WAIT).await?;
    ensure!(at_alice.encryption_info().is_some(), "alice's item for bob's message has no encryption info");

    // What the server holds is ciphertext.
    let raw = alice_api.event(room_id.as_str(), sent.response.event_id.as_str()).await?;
    if raw["type"] != "m.room.encrypted" {
        bail!("the server holds alice's message as {}", raw["type"]);
    }
    alice_sync.stop().await;
    bob_sync.stop().await;
    Ok(())
}

/// `user_id`'s device `device_id` as `client` knows it, asking the server (/keys/query) if needed.
async fn known_device(
    client: &matrix_sdk::Client,
    user_id: &matrix_sdk::ruma::UserId,
    device_id: &matrix_sdk::ruma::DeviceId,
) -> Result<matrix_sdk::encryption::identities::Device> {
    eventually(&format!("{user_id}'s device {device_id} known (/keys/query)"), WAIT, || async {
        let encryption = client.encryption();
        if let Some(device) = encryption.get_device(user_id, device_id).await.map_err(|e| e.to_string())? {
            return Ok(device);
        }
        encryption.request_user_identity(user_id).await.map_err(|e| e.to_string())?;
        Err("not yet".to_owned())
    })
    .await
}
