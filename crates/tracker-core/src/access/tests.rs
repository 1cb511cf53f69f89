//! Access rules: modes, lists and their files, passkeys (stored and stateless), client prefixes
//! in the saved state.

use super::*;

fn access(mode: AccessMode) -> Access {
    Access::new(AccessConfig {
        mode,
        ..Default::default()
    })
}

#[test]
fn modes() {
    let ih = InfoHash([1; 20]);
    let other = InfoHash([2; 20]);
    assert_eq!(access(AccessMode::Open).check_torrent(&ih, false), Ok(()));

    let w = access(AccessMode::Whitelist);
    assert_eq!(w.check_torrent(&ih, false), Err(AccessError::Unregistered));
    assert_eq!(
        w.check_torrent(&ih, true),
        Ok(()),
        "indexed torrents are allowed"
    );
    assert!(w.allow(ih));
    assert!(!w.allow(ih));
    assert_eq!(w.check_torrent(&ih, false), Ok(()));
    assert_eq!(
        w.check_torrent(&other, false),
        Err(AccessError::Unregistered)
    );
    assert!(w.unallow(&ih));
    assert_eq!(w.check_torrent(&ih, false), Err(AccessError::Unregistered));

    let b = access(AccessMode::Blacklist);
    assert_eq!(b.check_torrent(&ih, false), Ok(()));
    b.deny(ih);
    assert_eq!(b.check_torrent(&ih, true), Err(AccessError::Blacklisted));
    assert_eq!(
        AccessError::Unregistered.to_string(),
        "unregistered torrent"
    );

    let both = access(AccessMode::Both);
    both.allow(ih);
    both.allow(other);
    both.deny(other);
    assert_eq!(both.check_torrent(&ih, false), Ok(()));
    assert_eq!(
        both.check_torrent(&other, false),
        Err(AccessError::Blacklisted)
    );
}

#[test]
fn files_reload_and_keep_api_entries() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.txt");
    std::fs::write(
        &allow,
        format!(
            "# comment\n{}\n\n{}  # trailing\n",
            "aa".repeat(20),
            "BB".repeat(20)
        ),
    )
    .unwrap();
    let a = Access::new(AccessConfig {
        mode: AccessMode::Whitelist,
        allow_file: allow.to_str().unwrap().to_owned(),
        ..Default::default()
    });
    assert_eq!(a.reload_files().unwrap(), (2, 0));
    a.allow(InfoHash([3; 20]));
    assert_eq!(a.check_torrent(&InfoHash([0xbb; 20]), false), Ok(()));
    std::fs::write(&allow, format!("{}\n", "aa".repeat(20))).unwrap();
    a.reload_files().unwrap();
    assert_eq!(
        a.check_torrent(&InfoHash([0xbb; 20]), false),
        Err(AccessError::Unregistered)
    );
    assert_eq!(
        a.check_torrent(&InfoHash([3; 20]), false),
        Ok(()),
        "API entries survive a reload"
    );
    std::fs::write(&allow, "not hex\n").unwrap();
    let err = a.reload_files().unwrap_err().to_string();
    assert!(err.contains(":1:"), "{err}");
    assert_eq!(
        a.check_torrent(&InfoHash([0xaa; 20]), false),
        Ok(()),
        "a bad file changes nothing"
    );
}

#[test]
fn stored_and_stateless_passkeys() {
    let a = Access::new(AccessConfig {
        private: true,
        passkey_secret: "site secret".into(),
        ..Default::default()
    });
    assert_eq!(a.check_passkey(None, 0), Err(AccessError::PasskeyMissing));
    let k = Passkey::random();
    assert_eq!(
        a.check_passkey(Some(k.as_str().as_bytes()), 0),
        Err(AccessError::PasskeyInvalid)
    );
    a.add_passkey(PasskeyEntry {
        key: k,
        expires_at: Some(100),
        label: "alice".into(),
    });
    assert_eq!(a.check_passkey(Some(k.as_str().as_bytes()), 99), Ok(()));
    assert_eq!(
        a.check_passkey(Some(k.as_str().as_bytes()), 100),
        Err(AccessError::PasskeyInvalid)
    );
    assert!(a.revoke_passkey(&k));
    assert_eq!(
        a.check_passkey(Some(k.as_str().as_bytes()), 0),
        Err(AccessError::PasskeyInvalid)
    );

    let s = a.stateless_key(42, 1).unwrap();
    assert_eq!(&s.as_str()[..12], "0000002a0001");
    assert_eq!(a.check_passkey(Some(s.as_str().as_bytes()), 0), Ok(()));
    let mut forged = s.0;
    forged[31] = if forged[31] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        a.check_passkey(Some(&forged), 0),
        Err(AccessError::PasskeyInvalid)
    );
    a.set_min_version(42, 2);
    assert_eq!(
        a.check_passkey(Some(s.as_str().as_bytes()), 0),
        Err(AccessError::PasskeyInvalid)
    );
    let s2 = a.stateless_key(42, 2).unwrap();
    assert_eq!(a.check_passkey(Some(s2.as_str().as_bytes()), 0), Ok(()));
    assert_eq!(
        a.check_passkey(Some(b"short"), 0),
        Err(AccessError::PasskeyInvalid)
    );

    let state = a.state();
    let b = Access::new(a.config().clone());
    b.restore_state(state.clone());
    assert_eq!(b.state(), state);
    assert_eq!(
        b.check_passkey(Some(s.as_str().as_bytes()), 0),
        Err(AccessError::PasskeyInvalid)
    );
}

#[test]
fn api_client_prefixes_are_kept_in_the_state_and_config_ones_are_not() {
    let a = Access::new(AccessConfig {
        client_deny: vec!["-UT2".into()],
        ..Default::default()
    });
    a.clients().add(false, "-qB").unwrap();
    a.clients().add(true, "-XL").unwrap();
    let s = a.state();
    assert_eq!(
        (s.client_allow.clone(), s.client_deny.clone()),
        (vec!["-qB".to_owned()], vec!["-XL".to_owned()])
    );
    let json = serde_json::to_string(&s).unwrap();
    let b = Access::new(AccessConfig::default());
    b.restore_state(serde_json::from_str(&json).unwrap());
    assert!(!b.clients().allows(&crate::PeerId(*b"-XL0012-xunlei-00000")));
    assert!(b.clients().allows(&crate::PeerId(*b"-qB4650-qbittorrent1")));
    assert!(!b.clients().allows(&crate::PeerId(*b"-TR4000-transmission")));
    // A state without client lists (an older snapshot) still loads.
    let old: AccessState = serde_json::from_str(r#"{"allow":[],"deny":[]}"#).unwrap();
    assert!(old.client_allow.is_empty());
}
