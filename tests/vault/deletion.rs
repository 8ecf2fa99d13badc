//! Scheduled deletion (issue 17; docs/custody.md, "Scheduled deletion"): an approved key deletion
//! or tenant shred makes it unusable at once, for a window in which cancelling restores it whole;
//! the window's end destroys it (nothing left in the data directory); a restart in between keeps
//! the schedule. Time is the vault's manual clock.

use std::sync::Arc;

use crate::common::{TestVault, find_any_chunk};
use tresor_core::{
    DecryptRequest, Deletion, DueDeletion, Error, KeySpec, ManualClock, ProtectionLevel, TenantSpec,
};
use tresor_wire::keys::KeyConfigUpdate;

const T: &str = "payments";
const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;

fn vault() -> (TestVault, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let v = TestVault::with_clock(clock.clone());
    v.tenant(T, ProtectionLevel::Two);
    (v, clock)
}

fn deletable(v: &TestVault, name: &str, window: Option<u64>) {
    v.key(
        T,
        name,
        KeySpec {
            deletion_window: window,
            ..KeySpec::default()
        },
    );
    v.vault
        .configure_key(
            T,
            name,
            &KeyConfigUpdate {
                deletion_allowed: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
}

#[track_caller]
fn assert_pending(result: Result<impl std::fmt::Debug, Error>, destroy_at: u64) {
    match result {
        Err(e @ Error::PendingDeletion { .. }) => {
            let Error::PendingDeletion {
                destroy_at: at,
                scheduled_at,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*at, destroy_at);
            assert!(*scheduled_at < destroy_at);
            let message = e.to_string();
            let date = tresor_wire::time::rfc3339(destroy_at, 0);
            assert!(message.contains(&date), "{message} names {date}");
            assert!(message.contains("cancel-deletion"), "{message}");
        }
        other => panic!("expected a refusal naming the scheduled date, got {other:?}"),
    }
}

#[track_caller]
fn assert_gone(v: &TestVault, records: &[Vec<u8>], what: &str) {
    for (i, record) in records.iter().enumerate() {
        if let Some((file, at)) = find_any_chunk(&v.data_dir(), record) {
            panic!(
                "{what}: bytes {at}.. of record #{i} are still in {}",
                file.display()
            );
        }
    }
}

#[test]
fn a_deleted_key_is_unusable_for_its_window_cancel_restores_it_and_the_end_destroys_it() {
    let (v, clock) = vault();
    deletable(&v, "doomed", None);
    let old = v.encrypt(T, "doomed", b"old");
    v.vault.rotate_key(T, "doomed").unwrap();
    let new = v.encrypt(T, "doomed", b"new");
    v.key(T, "kept", KeySpec::default());
    let kept = v.encrypt(T, "kept", b"kept");

    // Default window: seven days.
    let Deletion::Scheduled(deletion) = v.vault.schedule_key_deletion(T, "doomed", None).unwrap()
    else {
        panic!("the default window is not 0");
    };
    assert_eq!(
        (deletion.scheduled_at, deletion.destroy_at),
        (T0, T0 + 7 * DAY)
    );
    let destroy_at = deletion.destroy_at;
    assert_pending(v.decrypt(T, "doomed", &old), destroy_at);
    assert_pending(
        v.vault.encrypt(
            T,
            "doomed",
            &tresor_core::EncryptRequest {
                plaintext: b"x",
                ..Default::default()
            },
        ),
        destroy_at,
    );
    assert_pending(v.vault.rotate_key(T, "doomed"), destroy_at);
    assert_pending(
        v.vault
            .configure_key(T, "doomed", &KeyConfigUpdate::default()),
        destroy_at,
    );
    // Reads show the state and the date; the name stays taken.
    let info = v.vault.key_info(T, "doomed").unwrap();
    assert_eq!(info.deletion, Some(deletion));
    assert!(matches!(
        v.vault.create_key(T, "doomed", KeySpec::default()),
        Err(Error::KeyExists { .. })
    ));
    // Asking again does not move the date.
    assert!(matches!(
        v.vault.schedule_key_deletion(T, "doomed", Some(0)),
        Err(Error::NotPermitted(m)) if m.contains("already scheduled")
    ));
    assert_eq!(
        v.vault.key_info(T, "doomed").unwrap().deletion,
        Some(deletion)
    );
    assert_eq!(v.decrypt(T, "kept", &kept).unwrap(), b"kept");

    // Cancel: usable again with every version.
    clock.advance(6 * DAY);
    assert!(v.vault.due_deletions().unwrap().is_empty());
    let restored = v.vault.cancel_key_deletion(T, "doomed").unwrap();
    assert_eq!(restored.deletion, None);
    assert_eq!(
        restored.versions.keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(v.decrypt(T, "doomed", &old).unwrap(), b"old");
    assert_eq!(v.decrypt(T, "doomed", &new).unwrap(), b"new");
    assert!(matches!(
        v.vault.cancel_key_deletion(T, "doomed"),
        Err(Error::NotPermitted(m)) if m.contains("not scheduled")
    ));
    clock.advance(2 * DAY);
    assert!(
        v.vault.due_deletions().unwrap().is_empty(),
        "a cancelled deletion never comes due"
    );

    // Again, with a restart in the middle of the window: the schedule is in the records.
    let records = vec![v.raw("keys/payments/doomed")];
    let Deletion::Scheduled(deletion) = v
        .vault
        .schedule_key_deletion(T, "doomed", Some(DAY))
        .unwrap()
    else {
        panic!("scheduled");
    };
    let mut records = records;
    records.push(v.raw("keys/payments/doomed"));
    let v = v.restart();
    assert_eq!(
        v.vault.key_info(T, "doomed").unwrap().deletion,
        Some(deletion)
    );
    assert_pending(v.decrypt(T, "doomed", &new), deletion.destroy_at);
    clock.advance(DAY - 1);
    assert!(v.vault.due_deletions().unwrap().is_empty());
    let due = DueDeletion::Key {
        tenant: T.into(),
        key: "doomed".into(),
    };
    assert!(!v.vault.destroy_if_due(&due).unwrap(), "not due yet");
    assert!(v.vault.key_info(T, "doomed").is_ok());
    clock.advance(1);
    assert_eq!(v.vault.due_deletions().unwrap(), std::slice::from_ref(&due));
    assert!(v.vault.destroy_if_due(&due).unwrap());
    assert!(!v.vault.destroy_if_due(&due).unwrap(), "destroyed once");
    assert!(matches!(
        v.vault.key_info(T, "doomed"),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        v.decrypt(T, "doomed", &old),
        Err(Error::KeyNotFound { .. })
    ));
    assert_gone(&v, &records, "after the window");
    let v = v.restart();
    assert_gone(&v, &records, "after the window and a restart");
    assert_eq!(v.vault.list_keys(T).unwrap(), ["kept"]);
    assert_eq!(v.decrypt(T, "kept", &kept).unwrap(), b"kept");
}

#[test]
fn a_zero_window_destroys_at_once_and_windows_are_bounded() {
    let (v, _clock) = vault();
    deletable(&v, "now", None);
    v.key(T, "protected", KeySpec::default());
    let record = v.raw("keys/payments/now");
    // Refusals change nothing.
    assert!(matches!(
        v.vault.schedule_key_deletion(T, "now", Some(30 * DAY + 1)),
        Err(Error::InvalidInput {
            field: "deletion_window",
            ..
        })
    ));
    assert!(matches!(
        v.vault.schedule_key_deletion(T, "protected", Some(DAY)),
        Err(Error::NotPermitted(m)) if m.contains("deletion_allowed")
    ));
    assert!(matches!(
        v.vault.schedule_key_deletion(T, "absent", Some(DAY)),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        v.vault.schedule_key_deletion("elsewhere", "now", Some(DAY)),
        Err(Error::TenantNotFound(_))
    ));
    assert_eq!(v.raw("keys/payments/now"), record);
    assert_eq!(v.vault.key_info(T, "protected").unwrap().deletion, None);

    assert_eq!(
        v.vault.schedule_key_deletion(T, "now", Some(0)).unwrap(),
        Deletion::Destroyed
    );
    assert!(matches!(
        v.vault.key_info(T, "now"),
        Err(Error::KeyNotFound { .. })
    ));
    assert_gone(&v, &[record], "after a zero window");

    // The window is per key: 0 configured on the key destroys at once too; 31 days is refused.
    deletable(&v, "configured", Some(0));
    assert_eq!(
        v.vault
            .schedule_key_deletion(T, "configured", None)
            .unwrap(),
        Deletion::Destroyed
    );
    assert!(matches!(
        v.vault.create_key(
            T,
            "long",
            KeySpec {
                deletion_window: Some(31 * DAY),
                ..KeySpec::default()
            }
        ),
        Err(Error::InvalidInput {
            field: "deletion_window",
            ..
        })
    ));
    deletable(&v, "thirty", Some(30 * DAY));
    let Deletion::Scheduled(d) = v.vault.schedule_key_deletion(T, "thirty", None).unwrap() else {
        panic!("scheduled");
    };
    assert_eq!(d.destroy_at - d.scheduled_at, 30 * DAY);
}

#[test]
fn setting_a_zero_window_is_a_weakening() {
    let (v, _clock) = vault();
    v.key(T, "k", KeySpec::default());
    let info = v.vault.key_info(T, "k").unwrap();
    assert_eq!(info.config.deletion_window(), 7 * DAY);
    let zero = KeyConfigUpdate {
        deletion_window: Some(0),
        ..Default::default()
    };
    assert_eq!(info.config.weakened_by(&zero).len(), 1);
    let longer = KeyConfigUpdate {
        deletion_window: Some(14 * DAY),
        ..Default::default()
    };
    assert!(info.config.weakened_by(&longer).is_empty());
    assert_eq!(
        v.vault
            .configure_key(T, "k", &longer)
            .unwrap()
            .config
            .deletion_window(),
        14 * DAY
    );
}

#[test]
fn a_shredded_tenant_waits_for_its_window_and_cancel_restores_every_key() {
    let clock = Arc::new(ManualClock::new(T0));
    let v = TestVault::with_clock(clock.clone());
    v.tenant("neighbour", ProtectionLevel::Two);
    v.vault
        .create_tenant(
            T,
            &TenantSpec {
                level: ProtectionLevel::Two,
                deletion_window: Some(3 * DAY),
                ..TenantSpec::default()
            },
        )
        .unwrap();
    v.key(T, "a", KeySpec::default());
    v.vault.rotate_key(T, "a").unwrap();
    v.key(T, "b", KeySpec::default());
    let a = v.encrypt(T, "a", b"a");
    let b = v.encrypt(T, "b", b"b");
    let neighbour = {
        v.key("neighbour", "n", KeySpec::default());
        v.encrypt("neighbour", "n", b"n")
    };
    assert!(matches!(
        v.vault.schedule_tenant_shred(T, Some(31 * DAY)),
        Err(Error::InvalidInput { .. })
    ));
    let Deletion::Scheduled(d) = v.vault.schedule_tenant_shred(T, None).unwrap() else {
        panic!("the tenant's window is 3 days");
    };
    assert_eq!(d.destroy_at, T0 + 3 * DAY);
    let info = v.vault.tenant_info(T).unwrap();
    assert_eq!(
        (info.destroy_at, info.deletion_window, info.keys),
        (Some(d.destroy_at), 3 * DAY, 2)
    );
    match v.decrypt(T, "a", &a) {
        Err(e @ Error::PendingDeletion { .. }) => {
            assert!(e.to_string().contains("tenant `payments`"), "{e}");
            assert!(
                e.to_string()
                    .contains(&tresor_wire::time::rfc3339(d.destroy_at, 0))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        v.vault.create_key(T, "c", KeySpec::default()),
        Err(Error::PendingDeletion { .. })
    ));
    assert!(matches!(
        v.vault.schedule_tenant_shred(T, None),
        Err(Error::NotPermitted(_))
    ));
    assert_eq!(v.decrypt("neighbour", "n", &neighbour).unwrap(), b"n");
    // Auto-rotation passes a waiting tenant by.
    assert!(v.vault.due_keys().unwrap().is_empty());

    let v = v.restart();
    assert_eq!(
        v.vault.tenant_info(T).unwrap().destroy_at,
        Some(d.destroy_at)
    );
    let restored = v.vault.cancel_tenant_shred(T).unwrap();
    assert_eq!((restored.destroy_at, restored.keys), (None, 2));
    assert_eq!(v.decrypt(T, "a", &a).unwrap(), b"a");
    assert_eq!(v.decrypt(T, "b", &b).unwrap(), b"b");
    assert_eq!(
        v.vault
            .key_info(T, "a")
            .unwrap()
            .versions
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(matches!(
        v.vault.cancel_tenant_shred(T),
        Err(Error::NotPermitted(_))
    ));

    // Again, to the end: everything goes, the neighbour stays.
    let records = [
        v.raw("tenants/payments"),
        v.raw("keys/payments/a"),
        v.raw("keys/payments/b"),
    ];
    v.vault.schedule_tenant_shred(T, Some(DAY)).unwrap();
    let due = DueDeletion::Tenant { tenant: T.into() };
    assert!(v.vault.due_deletions().unwrap().is_empty());
    clock.advance(DAY);
    assert_eq!(v.vault.due_deletions().unwrap(), std::slice::from_ref(&due));
    assert!(v.vault.destroy_if_due(&due).unwrap());
    assert!(matches!(
        v.vault.tenant_info(T),
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        v.vault.decrypt(
            T,
            "a",
            &DecryptRequest {
                ciphertext: &a,
                ..Default::default()
            }
        ),
        Err(Error::TenantNotFound(_))
    ));
    let records: Vec<Vec<u8>> = records.to_vec();
    assert_gone(&v, &records, "after the shred window");
    assert_eq!(v.decrypt("neighbour", "n", &neighbour).unwrap(), b"n");
    assert_eq!(v.vault.list_tenants().unwrap(), ["neighbour"]);
}

#[test]
fn a_window_ending_while_a_level_3_tenant_is_locked_still_destroys_the_key() {
    let (v, clock) = vault();
    v.tenant("vault3", ProtectionLevel::Three);
    v.key("vault3", "k", KeySpec::default());
    v.vault
        .configure_key(
            "vault3",
            "k",
            &KeyConfigUpdate {
                deletion_allowed: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    v.vault
        .schedule_key_deletion("vault3", "k", Some(DAY))
        .unwrap();
    let record = v.raw("keys/vault3/k");
    let v = v.restart();
    assert!(v.vault.tenant_info("vault3").unwrap().locked);
    clock.advance(DAY);
    let due = v.vault.due_deletions().unwrap();
    assert_eq!(
        due,
        [DueDeletion::Key {
            tenant: "vault3".into(),
            key: "k".into()
        }]
    );
    assert!(v.vault.destroy_if_due(&due[0]).unwrap());
    assert_gone(&v, &[record], "after the window, tenant locked");
    v.unlock("vault3", 0);
    assert!(v.vault.list_keys("vault3").unwrap().is_empty());
}
