use super::*;
use crate::status::VolumeStatus as V;

fn check<S: Status>(all: &[&'static Operation<S>]) {
    let mut names: Vec<&str> = all.iter().map(|o| o.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len(), "operation names repeat");
    for op in all {
        assert!(
            !op.begins_from(op.busy),
            "{}: begins from its own busy status",
            op.name
        );
        for end in [op.done, op.failed] {
            assert_ne!(end, Final::To(op.busy), "{}: ends busy", op.name);
        }
        let key = op.claim("r1");
        assert_eq!(
            ClaimKey::parse(S::KIND.as_str(), "r1", op.name),
            Some(key),
            "{}: its claim key does not parse back",
            op.name
        );
    }
}

#[test]
fn every_operation_leaves_its_busy_status_and_its_claim_names_it() {
    check(volume::ALL);
    check(snapshot::ALL);
    check(backup::ALL);
}

#[test]
fn the_volume_operations_move_as_cinders() {
    // (operation, begins from, busy, done, failed)
    type Row<'a> = (&'a Operation<V>, &'a [V], V, Final<V>, Final<V>);
    let table: &[Row] = &[
        (
            &volume::CREATE,
            &[],
            V::Creating,
            Final::To(V::Available),
            Final::To(V::Error),
        ),
        (
            &volume::DELETE,
            &[
                V::Available,
                V::Error,
                V::ErrorRestoring,
                V::ErrorExtending,
                V::ErrorManaging,
            ],
            V::Deleting,
            Final::Deleted,
            Final::To(V::ErrorDeleting),
        ),
        (
            &volume::EXTEND,
            &[V::Available, V::InUse],
            V::Extending,
            Final::Previous {
                otherwise: V::Available,
            },
            Final::To(V::ErrorExtending),
        ),
        (
            &volume::REVERT,
            &[V::Available],
            V::Reverting,
            Final::To(V::Available),
            Final::To(V::Error),
        ),
        (
            &volume::RETYPE,
            &[V::Available, V::InUse],
            V::Retyping,
            Final::Previous {
                otherwise: V::Available,
            },
            Final::Previous {
                otherwise: V::Available,
            },
        ),
        (
            &volume::MANAGE,
            &[],
            V::Managing,
            Final::To(V::Available),
            Final::To(V::ErrorManaging),
        ),
    ];
    for (op, from, busy, done, failed) in table {
        for s in *from {
            assert!(op.begins_from(*s), "{} from {s}", op.name);
        }
        assert_eq!(
            (op.busy, op.done, op.failed),
            (*busy, *done, *failed),
            "{}",
            op.name
        );
        assert_eq!(op.end(Outcome::Done), *done);
        assert_eq!(op.end(Outcome::Failed), *failed);
    }
    for refused in [V::InUse, V::Creating, V::Deleting, V::Deleted] {
        assert!(
            !volume::DELETE.begins_from(refused),
            "delete from {refused}"
        );
    }
    assert!(
        !volume::REVERT.begins_from(V::InUse),
        "revert of an attached volume"
    );
}

#[test]
fn claims_of_unknown_kinds_or_operations_do_not_parse() {
    assert_eq!(ClaimKey::parse("volume", "x", "format_disk"), None);
    assert_eq!(ClaimKey::parse("group", "x", "create_volume"), None);
    assert_eq!(
        ClaimKey::parse("snapshot", "x", "revert_to_snapshot").map(|k| k.resource),
        Some(ResourceKind::Snapshot)
    );
}
