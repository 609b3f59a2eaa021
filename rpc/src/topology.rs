//! Names on the broker: Cinder's, so operators recognise the queues.

/// The topic exchange all RPC goes through.
pub const EXCHANGE: &str = "cinder";
/// Where rejected casts (versions a service does not understand) are dead-lettered.
pub const DEAD_LETTER_EXCHANGE: &str = "cinder-dlx";
/// The scheduler's queue.
pub const SCHEDULER_QUEUE: &str = "cinder-scheduler";
/// RabbitMQ's pseudo-queue for direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The queue of the volume service for `host@backend` (Cinder's `topic.server`).
pub fn volume_queue(host: &str, backend: &str) -> String {
    format!("cinder-volume.{host}@{backend}")
}

/// The queue of a cluster of volume services (active-active).
pub fn volume_cluster_queue(cluster: &str, backend: &str) -> String {
    format!("cinder-volume.{cluster}@{backend}.cluster")
}

/// The queue of the backup service on `host` (Cinder's `cinder-backup.<host>`).
pub fn backup_queue(host: &str) -> String {
    format!("cinder-backup.{host}")
}

/// The queue holding casts a service rejected.
pub fn rejected_queue(queue: &str) -> String {
    format!("{queue}.rejected")
}

/// The queue of the volume service of `host@backend` (a volume's host without its pool).
pub fn backend_queue(backend: &str) -> String {
    format!("cinder-volume.{backend}")
}

/// The queue of the cluster `cluster@backend` (a volume's `cluster_name`).
pub fn cluster_queue(cluster_name: &str) -> String {
    format!("cinder-volume.{cluster_name}.cluster")
}
