//! Interoperability (issue 17): the roster imports from SIECLE and STS-Web
//! with uploaded files (GraphQL multipart request, the `Upload` scalar, as
//! attachments), renaming a class, and the turn of the school year. The
//! fields added to Establishment (schoolYear) and SchoolClass (closedYear)
//! are declared in `objects` beside theirs.

use super::objects::{Establishment, SchoolClass, Src};
use super::root::{command_context, parse};
use super::viewer;
use crate::graphql::errors::GqlResult;
use async_graphql::{Context, Object, Result, SimpleObject, Upload, ID};
use registre_app::import::{self, Input, Source};
use registre_app::ApiError;
use registre_domain::{roster, ClassId, EstablishmentId};
use std::io::Read;

/// How many changes of one kind an import makes.
#[derive(Debug, SimpleObject)]
pub struct ImportCount {
    /// e.g. "students registered", "class changes", "departures"
    pub kind: String,
    pub count: i32,
}

/// The difference an import makes between the exports and the roster.
#[derive(Debug, SimpleObject)]
pub struct ImportResult {
    /// true when nothing was written (dryRun)
    pub dry_run: bool,
    pub counts: Vec<ImportCount>,
    /// one readable line per change, in the order they are applied
    pub changes: Vec<String>,
    /// what the exports say and Registre does not import (contact persons, ...)
    pub notes: Vec<String>,
    /// events appended: 0 in a dry run, and for files already imported
    pub events_written: i32,
}

impl From<import::Outcome> for ImportResult {
    fn from(o: import::Outcome) -> Self {
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            dry_run: o.applied.is_none(),
            counts: o
                .diff
                .counts()
                .into_iter()
                .map(|(kind, n)| ImportCount {
                    kind: kind.to_owned(),
                    count: count(n),
                })
                .collect(),
            changes: o.diff.changes.iter().map(ToString::to_string).collect(),
            notes: o.diff.notes,
            events_written: count(o.applied.map_or(0, |a| a.events)),
        }
    }
}

/// The bytes of uploaded files, each under the transport's size limit
/// (the multipart parser refused larger ones as they streamed in).
fn inputs(ctx: &Context<'_>, files: Vec<Upload>) -> Result<Vec<Input>> {
    files
        .into_iter()
        .map(|file| {
            let value = file.value(ctx)?;
            let name = value.filename.clone();
            let mut bytes = Vec::new();
            value
                .into_read()
                .read_to_end(&mut bytes)
                .map_err(|e| ApiError::Internal(format!("upload: {e}")))
                .gql()?;
            Ok(Input { name, bytes })
        })
        .collect()
}

#[derive(Debug, Default)]
pub struct InteropMutation;

#[Object]
impl InteropMutation {
    /// ADMIN, or HEAD of the establishment: SIECLE's ElevesSansAdresses and ResponsablesAvecAdresses (XML or zip); the whole diff in one transaction, or nothing (INVALID_INPUT naming the file, line and element)
    async fn import_siecle(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
        files: Vec<Upload>,
        #[graphql(default = false)] dry_run: bool,
    ) -> Result<ImportResult> {
        run(ctx, &establishment_id, Source::Siecle, files, dry_run).await
    }

    /// ADMIN, or HEAD of the establishment: STS-Web's sts_emp_<UAI>_<year>.xml (teachers and their services)
    async fn import_sts(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
        file: Upload,
        #[graphql(default = false)] dry_run: bool,
    ) -> Result<ImportResult> {
        run(ctx, &establishment_id, Source::Sts, vec![file], dry_run).await
    }

    /// ADMIN, or HEAD of the class's establishment; a class of a past school year is read-only (CONFLICT)
    async fn rename_class(
        &self,
        ctx: &Context<'_>,
        class_id: ID,
        name: String,
    ) -> Result<SchoolClass> {
        let (app, v) = viewer(ctx).await?;
        let class_id: ClassId = parse("classId", &class_id)?;
        let cmd = roster::RenameClass { class_id, name };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(SchoolClass::new(class_id, Src::Live))
    }

    /// ADMIN, or HEAD of the establishment: starts the school year `year` (2026 for 2026-2027), current or next; the classes and periods of the years before are closed and stay readable; the next SIECLE import creates the new classes
    async fn start_school_year(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
        year: i32,
    ) -> Result<Establishment> {
        let (app, v) = viewer(ctx).await?;
        let establishment_id: EstablishmentId = parse("establishmentId", &establishment_id)?;
        let cmd = roster::StartSchoolYear {
            establishment_id,
            year,
        };
        app.execute_many(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(Establishment::new(establishment_id, Src::Live))
    }
}

async fn run(
    ctx: &Context<'_>,
    establishment_id: &ID,
    source: Source,
    files: Vec<Upload>,
    dry_run: bool,
) -> Result<ImportResult> {
    let (app, v) = viewer(ctx).await?;
    let establishment: EstablishmentId = parse("establishmentId", establishment_id)?;
    let inputs = inputs(ctx, files)?;
    let cx = command_context(ctx, &v);
    import::run(app, &cx, establishment, source, inputs, dry_run)
        .await
        .map(ImportResult::from)
        .gql()
}
