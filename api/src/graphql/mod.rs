//! The GraphQL contract (../shared/contract.graphql) over the application
//! layer: every type, field, argument and operation under its contract name,
//! plus `declareAbsence` (a guardian's advance declaration). Resolvers read the
//! in-memory model only; the store is touched once per request for
//! read-your-writes, by commands, and by the audit queries.

// discipline (issue 15)
mod discipline;
// communication (issue 16)
pub mod communication;
pub mod errors;
pub mod evaluation;
// interop (issue 17)
pub mod interop;
pub mod limits;
mod objects;
mod root;
mod scalars;
// school day (issue 13)
pub mod school_day;

pub use limits::{Budget, QueryLimits};
pub use objects::*;
pub use root::{RecordMutation, RecordQuery, RecordSubscription};

// The schema's roots: one object per part of the contract, merged, so that a
// feature adds its fields in its own module and one entry here. (Plain
// comments: doc comments would be the types' descriptions in the SDL.)
#[derive(async_graphql::MergedObject, Default, Debug)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    RecordQuery,
    school_day::SchoolDayQuery,
    discipline::DisciplineQuery,
    communication::CommunicationQuery,
);

#[derive(async_graphql::MergedObject, Default, Debug)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    RecordMutation,
    school_day::SchoolDayMutation,
    evaluation::EvaluationMutation,
    discipline::DisciplineMutation,
    communication::CommunicationMutation,
    interop::InteropMutation,
);

#[derive(async_graphql::MergedSubscription, Default, Debug)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(RecordSubscription);
pub use scalars::Date;

use crate::context::{AuthRejection, Caller};
use crate::graphql::errors::GqlResult;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::{
    Context, Request, Response, Schema, ServerError, ServerResult, ValidationResult,
};
use futures::stream::{BoxStream, StreamExt};
use registre_app::{ApiError, App, Viewer};
use registre_domain::ClassId;
use registre_projections::ReadModel;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

pub type RegistreSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted (a guardian's dashboard is 5 deep).
pub const MAX_DEPTH: usize = 12;
/// Most a query may cost: about the values it resolves, lists counted at
/// their typical length (see [`limits`]'s cost model).
pub const MAX_COMPLEXITY: usize = 50_000;

/// The schema with the default limits ([`QueryLimits::default`]).
pub fn build_schema(app: Arc<App>) -> RegistreSchema {
    build_schema_with(app, QueryLimits::default())
}

/// The schema with its limits. The transport adds the request data (see
/// [`crate::context`]: a `Caller` when a token was verified, an
/// `AuthRejection` when one was refused, and the `RequestId`).
pub fn build_schema_with(app: Arc<App>, limits: QueryLimits) -> RegistreSchema {
    // Outermost first: codes are added to the errors of every later step.
    let builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .data(app)
    // Depth is checked by `limits` (without expanding fragments, and
    // sparing introspection), not by async-graphql's `limit_depth`.
    .extension(Guard(limits));
    if limits.introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The schema in SDL, as exported to docs/schema.graphql.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .finish()
    .sdl()
}

/// One per request: the viewer, resolved once (one `head()` round trip and a
/// lookup in the model), whatever the number of root fields.
#[derive(Default)]
struct Session {
    viewer: tokio::sync::OnceCell<Viewer>,
    /// cluster (issue 12): the slices of classes held elsewhere, fetched
    /// once per request whatever the number of fields reading them.
    slices: parking_lot::Mutex<HashMap<ClassId, Arc<tokio::sync::OnceCell<Arc<ReadModel>>>>>,
}

// cluster (issue 12)
/// Where a class's record is read: the node's model when it folds the
/// class's establishment, else the class's slice fetched from a live node
/// that does, at this node's position (which covers what the caller wrote
/// before: read-your-writes). No live holder: UNAVAILABLE naming the
/// establishment, never an empty record.
pub(crate) async fn class_src(ctx: &Context<'_>, class: ClassId) -> async_graphql::Result<Src> {
    let app = app(ctx)?;
    let Some(partition) = held_elsewhere(app, class) else {
        return Ok(Src::Live);
    };
    let at = app.read_model_position();
    let fetch = || fetch_slice(app, partition, class, at);
    let slice = match ctx.data_opt::<Session>() {
        Some(session) => {
            let cell = session.slices.lock().entry(class).or_default().clone();
            cell.get_or_try_init(fetch).await.cloned().gql()?
        }
        None => fetch().await.gql()?,
    };
    Ok(Src::Remote(slice))
}

/// Like [`class_src`], at least at `at` and never from the request's cache:
/// a subscription lives across events, each one newer than the last slice.
pub(crate) async fn class_src_at(
    ctx: &Context<'_>,
    class: ClassId,
    at: registre_store::Position,
) -> async_graphql::Result<Src> {
    let app = app(ctx)?;
    let Some(partition) = held_elsewhere(app, class) else {
        return Ok(Src::Live);
    };
    let at = at.max(app.read_model_position());
    let slice = fetch_slice(app, partition, class, at).await.gql()?;
    Ok(Src::Remote(slice))
}

/// The partition of `class` when another node folds it.
fn held_elsewhere(app: &App, class: ClassId) -> Option<registre_store::Partition> {
    app.read(|m| registre_app::cluster::class_partition(m, class))
        .filter(|p| !app.cluster().holds(p))
}

async fn fetch_slice(
    app: &App,
    partition: registre_store::Partition,
    class: ClassId,
    at: registre_store::Position,
) -> Result<Arc<ReadModel>, ApiError> {
    let request = registre_app::cluster::SliceRequest {
        scope: registre_app::cluster::SliceScope::Class(class),
        at,
    };
    app.cluster()
        .fetch_slice(&partition, &request)
        .await
        .map(Arc::new)
}

/// The schema's one extension: error codes on every response (outermost),
/// the document's limits before it is parsed again, its cost after
/// validation, and the per-request [`Session`]. One and not three:
/// async-graphql threads every field's resolution through each extension
/// (a boxed future per field per extension, whatever hooks it overrides),
/// and a dashboard resolves hundreds of fields; three extensions cost 8 to
/// 13 % more CPU per dashboard than one (docs/benchmarks.md, section 7).
struct Guard(QueryLimits);

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension(self.0))
    }
}

struct GuardExtension(QueryLimits);

#[async_graphql::async_trait::async_trait]
impl Extension for GuardExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        errors::add_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(errors::add_codes).boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Over HTTP the caller is request data; over WebSocket, session data.
        let has_caller = request.data.contains_key(&TypeId::of::<Caller>())
            || ctx.data_opt::<Caller>().is_some();
        let request = limits::prepare(&self.0, has_caller, request)?;
        next.run(ctx, request.data(Session::default())).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        limits::check_cost(&self.0, next.run(ctx).await?)
    }
}

pub(crate) fn app<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Arc<App>> {
    ctx.data::<Arc<App>>()
        .map_err(|_| ApiError::Internal("schema built without an App".into()))
        .gql()
}

async fn resolve_viewer(app: &App, ctx: &Context<'_>) -> Result<Viewer, ApiError> {
    let Some(caller) = ctx.data_opt::<Caller>() else {
        let why = ctx
            .data_opt::<AuthRejection>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| "a bearer token is required".into());
        return Err(ApiError::Unauthenticated(why));
    };
    app.consistent().await?;
    app.viewer(caller).await
}

/// The authenticated viewer of this request, with the read model caught up
/// to the log head as of the first call (read-your-writes).
pub(crate) async fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a Arc<App>, Viewer)> {
    let app = app(ctx)?;
    let viewer = match ctx.data_opt::<Session>() {
        Some(session) => session
            .viewer
            .get_or_try_init(|| resolve_viewer(app, ctx))
            .await
            .cloned()
            .gql()?,
        None => resolve_viewer(app, ctx).await.gql()?,
    };
    Ok((app, viewer))
}

/// The field path being resolved, for the access log.
pub(crate) fn operation(ctx: &Context<'_>) -> String {
    ctx.path_node
        .map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".into())
}
