//! Scenario 5: server-side key backup. Carol's first device bootstraps cross-signing and enables
//! recovery (a backup version, secret storage in account data, a recovery key), then sends and
//! receives encrypted messages whose room keys go into the backup. A second device of carol, logged
//! in afterwards, recovers with the recovery key and decrypts the old messages from the backup.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use matrix_sdk::{
    encryption::{backups::BackupState, recovery::RecoveryState},
    ruma::events::room::message::RoomMessageEventContent,
};
use matrix_sdk_ui::timeline::RoomExt;

use crate::common::{
    Api, bootstrap_cross_signing, create_encrypted_room, eventually, init_tracing, join_when_invited,
    login, start_sync, unique, wait_for_message,
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_key_backup_new_device_recovers_and_decrypts_old_messages() -> Result<()> {
    init_tracing();
    let carol_api = Api::register(&unique("s5carol")).await?;
    let dave_api = Api::register(&unique("s5dave")).await?;
    let carol1 = login(&carol_api.localpart, "s5 carol device 1").await?;
    let dave = login(&dave_api.localpart, "s5 dave").await?;
    let (c1, d) = (carol1.client.clone(), dave.client.clone());
    bootstrap_cross_signing(&c1, &carol_api.localpart).await?;
    let c1_sync = start_sync(&c1).await?;
    let d_sync = start_sync(&d).await?;

    // Recovery on device 1: backup version + secret storage + recovery key.
    let recovery_key = c1.encryption().recovery().enable().await.context("recovery().enable()")?;
    ensure!(c1.encryption().backups().state() == BackupState::Enabled, "backup state {:?}", c1.encryption().backups().state());
    ensure!(c1.encryption().recovery().state() == RecoveryState::Enabled, "recovery state {:?}", c1.encryption().recovery().state());
    let version = carol_api.get("/_matrix/client/v3/room_keys/version").await?;
    eprintln!("s5: backup version on the server: {version}");

    // Messages both ways in an encrypted room.
    let carol_id = c1.user_id().context("carol id")?.to_owned();
    let room = create_encrypted_room(&d, "s5 backup", &[&carol_id]).await?;
    let room_id = room.room_id().to_owned();
    let c1_room = join_when_invited(&c1, &room_id).await?;
    let c1_timeline = c1_room.timeline().await?;
    let d_room = d.get_room(&room_id).context("dave's room")?;
    let d_timeline = d_room.timeline().await?;
    let mut bodies = Vec::new();
    for n in 1..=2 {
        let text = format!("from dave {n}");
        d_room.send(RoomMessageEventContent::text_plain(&text)).await?;
        wait_for_message(&c1_timeline, &text, WAIT).await?;
        bodies.push(text);
        let text = format!("from carol {n}");
        c1_room.send(RoomMessageEventContent::text_plain(&text)).await?;
        wait_for_message(&d_timeline, &text, WAIT).await?;
        bodies.push(text);
    }

    // Every room key of device 1 uploaded to the backup.
    c1.encryption().backups().wait_for_steady_state().await.context("backups().wait_for_steady_state()")?;
    let version = carol_api.get("/_matrix/client/v3/room_keys/version").await?;
    let count = version["count"].as_u64().unwrap_or(0);
    ensure!(count >= 2, "the backup counts {count} keys after device 1 uploaded its 2 sessions (dave's, carol's): {version}");
    let keys = carol_api
        .get(&format!("/_matrix/client/v3/room_keys/keys?version={}", version["version"].as_str().unwrap_or_default()))
        .await?;
    ensure!(!keys["rooms"][room_id.as_str()]["sessions"].as_object().map(|s| s.is_empty()).unwrap_or(true), "GET /room_keys/keys has no session for the room: {keys}");

    // Device 2: a new login, recovery with the key, then the old messages decrypt.
    let carol2 = login(&carol_api.localpart, "s5 carol device 2").await?;
    let c2 = carol2.client.clone();
    let c2_sync = start_sync(&c2).await?;
    c2.encryption().wait_for_e2ee_initialization_tasks().await;
    c2.encryption().recovery().recover(&recovery_key).await.context("recovery().recover(key) on device 2")?;
    ensure!(c2.encryption().recovery().state() == RecoveryState::Enabled, "device 2 recovery state {:?}", c2.encryption().recovery().state());
    // Recovery imported the cross-signing keys: device 2 signed itself (/keys/signatures/upload),
    // and device 1 sees that signature in /keys/query.
    let own2 = c2.encryption().get_own_device().await?.context("device 2's own device")?;
    ensure!(own2.is_cross_signed_by_owner(), "device 2 is not cross-signed by its owner after recovery");
    let device2_id = c2.device_id().context("device 2 id")?.to_owned();
    eventually("device 2 cross-signed, as device 1 sees it (/keys/query)", WAIT, || async {
        let encryption = c1.encryption();
        match encryption.get_device(&carol_id, &device2_id).await.map_err(|e| e.to_string())? {
            Some(device) if device.is_cross_signed_by_owner() && device.is_verified() => Ok(()),
            seen => {
                encryption.request_user_identity(&carol_id).await.map_err(|e| e.to_string())?;
                Err(format!("{:?}", seen.map(|d| (d.is_cross_signed_by_owner(), d.is_verified()))))
            }
        }
    })
    .await?;
    let c2_room = eventually("the room at device 2", WAIT, || async {
        c2.get_room(&room_id).ok_or("not yet".to_owned())
    })
    .await?;
    let c2_timeline = c2_room.timeline().await?;
    for _ in 0..10 {
        if c2_timeline.paginate_backwards(20).await? {
            break;
        }
    }
    // Keys come from the backup after the decryption failures (BackupDownloadStrategy::AfterDecryptionFailure).
    for text in &bodies {
        let item = wait_for_message(&c2_timeline, text, WAIT).await?;
        ensure!(item.encryption_info().is_some(), "device 2's item {text:?} was not encrypted");
    }
    c1_sync.stop().await;
    c2_sync.stop().await;
    d_sync.stop().await;
    Ok(())
}
