//! Registre's projections. Two kinds (decision 0010):
//! - replayable: the read model, folded from the event log only: the parent
//!   and student view, the teacher and education staff views, the stats view.
//!   They live in memory on every node ([`ReadModel`]), are kept up to date by
//!   a [`ProjectionEngine`], one consumer of the node's [`LogFollower`]
//!   (which decodes each event once, [`LoggedEvent::decode`], and feeds every
//!   consumer of the log in order), are snapshotted to the store
//!   so that a restart resumes from the snapshot, and can be rebuilt;
//! - persisted, not replayable: the usage indicators ([`usage`]), folded from
//!   the access log (which is purged) into the store's usage tables with
//!   their own checkpoint, never rebuilt.
//!
//! Why in memory: one fold serves both store backends, queries never make a
//! database round trip (a guardian's dashboard is a handful of map look-ups),
//! and a rebuild runs at the speed of deserialising events. The log stays the
//! only truth: the model can always be thrown away and folded again.
//!
//! Entry points for the API:
//! - [`LogFollower::new`], [`LogFollower::register`] (a [`LogConsumer`]),
//!   [`ProjectionEngine::open_on`] (the read model as one of its consumers),
//!   [`LogFollower::start`]; [`ProjectionEngine::start`] for a node of its own;
//! - [`ProjectionEngine::read`],
//!   [`ProjectionEngine::wait_for`] (read-your-writes), [`ProjectionEngine::metrics`],
//!   [`ProjectionEngine::rebuild`], [`ProjectionEngine::shutdown`];
//! - the query methods of [`ReadModel`] (roster look-ups and command facts in
//!   `views`, the teacher views in `teacher`, the stats in `stats`);
//! - [`usage::fold_usage`] and [`UsageReport`] for the usage indicators;
//! - [`fold_until`] and [`replay_to_dir`] for auditors.

pub mod communication;
mod compact_time;
pub mod discipline;
pub mod engine;
pub mod evaluation;
pub mod follower;
pub mod model;
pub mod parallel;
pub mod partition;
pub mod replay;
pub mod school_day;
pub mod slice;
pub mod snapshots;
mod sorted;
pub mod stats;
pub mod teacher;
pub mod usage;
pub mod views;

pub use engine::{
    EngineConfig, Lagging, ProjectionEngine, ProjectionError, ProjectionMetrics, RebuildProgress,
    RebuildReport,
};
pub use evaluation::{
    Appreciations, ClassFigures, ClassSubject, DateRange, Evaluation, Period, ReportCard,
    ReportCardSubject, SubjectRow,
};
pub use follower::{ConsumerStatus, LogConsumer, LogFollower, LoggedEvent, Page};
pub use model::{
    Absence, ApplyError, Assessment, Establishment, Grade, Homework, Message, Person, ReadModel,
    SchoolClass, Student, Teaching, Thread,
};
pub use partition::{
    backfill as backfill_partitions, partition_of, verify as verify_partitions, BackfillError,
    PartitionFacts, PartitionReport, Partitioner,
};
pub use replay::{fold_until, replay_to_dir, write_views, ReplayManifest, ReplayProgress};
pub use slice::{fold_in_parallel, union_of, DirectoryFold, PartitionFold, Scope};
pub use stats::{
    AbsenceStats, GradeDistribution, HalfDay, StudentMonth, WeeklyAbsenceRate,
    ABSENTEEISM_THRESHOLD,
};
pub use teacher::{
    AssessmentStats, Gradebook, GradebookColumn, GradebookRow, HomeworkDay, RollCall, RollCallRow,
};
pub use usage::{PseudonymKey, UsageReport};
pub use views::{GradeView, MessageView, StudentRecord, SubjectAverage};
