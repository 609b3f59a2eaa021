//! User messages (the messages API): Cinder's action and detail ids with their texts,
//! and the details of our own that say why a volume could not be placed. A message is
//! stored as ids; `user_message` is rendered from them as Cinder does
//! (`"<action>:<detail>"`).

/// What the user asked for when it failed (Cinder's `message_field.Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// Three digits.
    pub id: &'static str,
    /// Text.
    pub text: &'static str,
}

/// Why it failed (Cinder's `message_field.Detail`, and ours from `101`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detail {
    /// Three digits.
    pub id: &'static str,
    /// Text.
    pub text: &'static str,
}

/// Cinder's `SCHEDULE_ALLOCATE_VOLUME`.
pub const SCHEDULE_ALLOCATE_VOLUME: Action = Action {
    id: "001",
    text: "schedule allocate volume",
};
/// Cinder's `COPY_VOLUME_TO_IMAGE`.
pub const COPY_VOLUME_TO_IMAGE: Action = Action {
    id: "003",
    text: "copy volume to image",
};
/// Cinder's `REIMAGE_VOLUME`.
pub const REIMAGE_VOLUME: Action = Action {
    id: "016",
    text: "reimage volume",
};
/// Cinder's `CREATE_VOLUME_FROM_BACKEND`.
pub const CREATE_VOLUME_FROM_BACKEND: Action = Action {
    id: "008",
    text: "create volume from backend storage",
};

/// Cinder's `UNKNOWN_ERROR`.
pub const UNKNOWN_ERROR: Detail = Detail {
    id: "001",
    text: "An unknown error occurred.",
};
/// Cinder's `NO_BACKEND_AVAILABLE`.
pub const NO_BACKEND_AVAILABLE: Detail = Detail {
    id: "003",
    text: "Could not find any available weighted backend.",
};
/// Cinder's `FAILED_TO_UPLOAD_VOLUME`.
pub const FAILED_TO_UPLOAD_VOLUME: Detail = Detail {
    id: "004",
    text: "Failed to upload volume to image at backend.",
};
/// Cinder's `DRIVER_FAILED_CREATE`.
pub const DRIVER_FAILED_CREATE: Detail = Detail {
    id: "012",
    text: "Driver failed to create the volume.",
};
/// No backend of the zone is up.
pub const NO_BACKEND_IN_ZONE: Detail = Detail {
    id: "101",
    text: "No volume backend is up in the requested availability zone.",
};
/// Capacity.
pub const INSUFFICIENT_CAPACITY: Detail = Detail {
    id: "102",
    text: "No volume backend has enough free space for a volume of the requested size.",
};
/// Capabilities.
pub const NO_MATCHING_CAPABILITIES: Detail = Detail {
    id: "103",
    text: "No volume backend has the capabilities the volume type asks for.",
};
/// Stay-put creates.
pub const SOURCE_BACKEND_UNAVAILABLE: Detail = Detail {
    id: "104",
    text:
        "The backend holding the source snapshot or volume is down or cannot take the new volume.",
};
/// Reschedules exhausted.
pub const ATTEMPTS_EXHAUSTED: Detail = Detail {
    id: "105",
    text:
        "Creating the volume failed on every backend tried, up to the scheduler's maximum attempts.",
};
/// Hints.
pub const HINTS_UNSATISFIED: Detail = Detail {
    id: "106",
    text: "No volume backend satisfies the scheduler hints.",
};
/// Backends report their storage down.
pub const BACKENDS_DOWN: Detail = Detail {
    id: "107",
    text: "Every volume backend that could take the volume reports its storage down.",
};

const ACTIONS: &[Action] = &[
    SCHEDULE_ALLOCATE_VOLUME,
    COPY_VOLUME_TO_IMAGE,
    CREATE_VOLUME_FROM_BACKEND,
    REIMAGE_VOLUME,
];
const DETAILS: &[Detail] = &[
    UNKNOWN_ERROR,
    NO_BACKEND_AVAILABLE,
    FAILED_TO_UPLOAD_VOLUME,
    DRIVER_FAILED_CREATE,
    NO_BACKEND_IN_ZONE,
    INSUFFICIENT_CAPACITY,
    NO_MATCHING_CAPABILITIES,
    SOURCE_BACKEND_UNAVAILABLE,
    ATTEMPTS_EXHAUSTED,
    HINTS_UNSATISFIED,
    BACKENDS_DOWN,
];

/// Cinder's event id: `VOLUME_<resource type>_<action>_<detail>`.
pub fn event_id(resource_type: &str, action: Action, detail: Detail) -> String {
    format!("VOLUME_{resource_type}_{}_{}", action.id, detail.id)
}

/// The `user_message` of stored ids, as Cinder renders it (unknown ids: Cinder's
/// fallbacks).
pub fn user_message(action_id: Option<&str>, detail_id: Option<&str>) -> String {
    let action = ACTIONS
        .iter()
        .find(|a| Some(a.id) == action_id)
        .map_or("unknown action", |a| a.text);
    let detail = DETAILS
        .iter()
        .find(|d| Some(d.id) == detail_id)
        .map_or(UNKNOWN_ERROR.text, |d| d.text);
    format!("{action}:{detail}")
}

/// Cinder's `message_ttl`: 30 days.
pub const MESSAGE_TTL_SECS: u64 = 2_592_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_render_as_cinder_renders_them() {
        assert_eq!(
            event_id("VOLUME", SCHEDULE_ALLOCATE_VOLUME, NO_BACKEND_AVAILABLE),
            "VOLUME_VOLUME_001_003"
        );
        assert_eq!(
            user_message(Some("001"), Some("003")),
            "schedule allocate volume:Could not find any available weighted backend."
        );
        assert_eq!(
            user_message(Some("999"), Some("999")),
            "unknown action:An unknown error occurred."
        );
        let ids: std::collections::BTreeSet<_> = DETAILS.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), DETAILS.len(), "detail ids are unique");
    }
}
