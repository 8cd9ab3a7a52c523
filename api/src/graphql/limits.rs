//! Query limits, checked before any work that grows with the document.
//!
//! async-graphql parses a document, then validates it by walking it with
//! every fragment spread expanded in place: a 1 KB document of 25 fragments
//! that each spread the previous one twice expands to 2^25 fields, and was
//! refused as too complex only after seconds of CPU. So a request is refused,
//! in this order and before the next step runs, when:
//!
//! 1. its text is longer than `max_bytes` (cost: none);
//! 2. a lexical pass (linear, no allocation) finds more than `max_tokens`
//!    tokens or brackets nested deeper than [`MAX_NESTING`], which also bounds
//!    the parser's recursion;
//! 3. once parsed, the document has more than `max_aliases` aliases,
//!    `max_fragment_spreads` fragment spreads or `max_directives` directives
//!    (counted as written), or a fragment cycle;
//! 4. with fragments expanded, it would have more than `max_selections`
//!    selections or fields nested deeper than `max_depth` (not counting what
//!    is under `__schema` and `__type`: GraphiQL's introspection query is 13
//!    deep, and reads only the schema). Both are computed
//!    WITHOUT expanding: each fragment's expanded size and depth is computed
//!    once and reused wherever it is spread (memoised over the fragment graph),
//!    so this step is linear in the document whatever it expands to.
//!
//! Only then does async-graphql validate it (its work is now bounded by
//! `max_selections`), computing the cost below; a cost above `max_cost` is
//! refused before execution. Every refusal is `INVALID_INPUT` with a message
//! that names the measure and the limit ("Query is too complex: ...", or
//! "Query is nested too deep: ..." for depth).
//!
//! A request without a [`Caller`](crate::context::Caller) (no token, or a refused one) gets the much
//! smaller `anonymous` budget: it can only be told UNAUTHENTICATED or read
//! the schema (introspection), so nothing larger than an introspection query
//! is worth parsing for it.
//!
//! # Cost model
//!
//! The cost estimates the number of values a query resolves. A field costs 1
//! plus the cost of its selection; a list field multiplies the cost of its
//! selection by the size such a list typically reaches (an establishment's
//! classes, a class's students, a year of a student's grades, ...: the
//! constants below); a field that does work of its own (replaying the log for
//! `studentAsOf`, reading the store for `exportPersonData`) adds a fixed
//! weight. A guardian's dashboard (every child with averages, grades,
//! absences and homework) costs 2,705; one class's full record about
//! 20,000; the budget is 50,000. What it refuses: every student's grades of a
//! whole establishment in one request (read it class by class), and more than
//! two `studentAsOf` in one request. Each weight is capped at [`COST_CAP`] so
//! that sums can never overflow, whatever the nesting.
//!
//! Introspection is on by default (the demo's GraphiQL needs it); production
//! may turn it off (`introspection: false`), the schema being published as
//! docs/schema.graphql anyway.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult};
use std::collections::HashMap;

/// Deepest bracket nesting the lexical pass accepts; the parser recurses on
/// brackets (and gives up at 64 itself, but only after building the tree).
pub const MAX_NESTING: usize = 48;

/// What one document may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Length of the document text, in bytes (variables are not counted).
    pub max_bytes: usize,
    /// Lexical tokens (a string literal is one token).
    pub max_tokens: usize,
    pub max_aliases: usize,
    /// Fragment spreads as written (`...F`).
    pub max_fragment_spreads: usize,
    /// Directives as written (`@skip`, `@include`, ...).
    pub max_directives: usize,
    /// Selections (fields, spreads, inline fragments) once every fragment is
    /// expanded where it is spread.
    pub max_selections: u64,
    /// Fields nested in fields, fragments expanded (`{ me { id } }` is 2);
    /// what is under `__schema` or `__type` does not count.
    pub max_depth: usize,
}

impl Budget {
    /// Callers with a valid token.
    pub const CALLER: Budget = Budget {
        // Room for a message body written inline rather than as a variable.
        max_bytes: 64 * 1024,
        max_tokens: 10_000,
        max_aliases: 100,
        max_fragment_spreads: 200,
        max_directives: 100,
        max_selections: 2_000,
        max_depth: super::MAX_DEPTH,
    };

    /// Requests without a caller: enough for GraphiQL's introspection query.
    pub const ANONYMOUS: Budget = Budget {
        max_bytes: 8 * 1024,
        max_tokens: 1_000,
        max_aliases: 10,
        max_fragment_spreads: 50,
        max_directives: 10,
        max_selections: 600,
        max_depth: super::MAX_DEPTH,
    };
}

/// The limits of a schema (see the module doc). `Default` is what the demo
/// and the tests run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// For requests with a [`Caller`](crate::context::Caller).
    pub caller: Budget,
    /// For requests without one.
    pub anonymous: Budget,
    /// Most a validated query may cost (see "Cost model").
    pub max_cost: usize,
    /// Whether `__schema` and `__type` answer.
    pub introspection: bool,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            caller: Budget::CALLER,
            anonymous: Budget::ANONYMOUS,
            max_cost: super::MAX_COMPLEXITY,
            introspection: true,
        }
    }
}

// ---- Cost model -------------------------------------------------------------------------

/// Typical sizes of the lists, used as multipliers (see "Cost model").
pub mod size {
    /// `Establishment.classes`: a large collège or lycée.
    pub const CLASSES: usize = 30;
    /// `SchoolClass.students`.
    pub const STUDENTS: usize = 30;
    /// `Student.grades`: a school year.
    pub const GRADES: usize = 60;
    /// `Student.absences`: a year, lateness included.
    pub const ABSENCES: usize = 20;
    /// `Student.homework` (without a range, the whole year).
    pub const HOMEWORK: usize = 30;
    /// `Student.averages`: one row per subject.
    pub const SUBJECTS: usize = 12;
    /// `myChildren`.
    pub const CHILDREN: usize = 4;
    /// `inbox` (until it is paginated).
    pub const INBOX: usize = 100;
    /// `Message.to`.
    pub const RECIPIENTS: usize = 10;
    /// `auditTrail`, `accessLog`: a person's history.
    pub const HISTORY: usize = 100;
    /// `AbsenceStats.studentsOverThreshold`.
    pub const OVER_THRESHOLD: usize = 10;
}

/// Fixed weights of fields that work before returning anything.
pub mod weight {
    /// `studentAsOf` replays the log up to a date: two fit in a request.
    pub const AS_OF: usize = 20_000;
    /// `exportPersonData` reads everything held about a person in the store.
    pub const EXPORT: usize = 5_000;
    /// `absenceStats` scans a class's absences over up to 400 days.
    pub const STATS: usize = 200;
}

/// The most one field may weigh: with at most `max_selections` fields, sums
/// of capped weights stay far below `usize::MAX` (async-graphql adds them
/// unchecked).
pub const COST_CAP: usize = 1 << 40;

/// The length a paginated list's cost assumes: the page asked for (clamped
/// to what the resolver accepts, `root::PAGE_MAX`), or `default` when none
/// is given.
pub fn page(first: Option<i32>, default: usize) -> usize {
    first.map_or(default, |n| n.clamp(1, super::root::PAGE_MAX) as usize)
}

/// A list field: 1, plus `size` times its selection.
pub fn list(size: usize, child_complexity: usize) -> usize {
    child_complexity
        .saturating_mul(size)
        .saturating_add(1)
        .min(COST_CAP)
}

/// A field that does work of its own: its weight plus its selection.
pub fn fixed(weight: usize, child_complexity: usize) -> usize {
    child_complexity.saturating_add(weight).min(COST_CAP)
}

// ---- The checks -------------------------------------------------------------------------------

/// An `INVALID_INPUT` error for a request refused by a limit.
pub(crate) fn refusal(message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", "INVALID_INPUT");
    e
}

fn too_complex(
    what: &str,
    found: impl std::fmt::Display,
    limit: impl std::fmt::Display,
) -> ServerError {
    refusal(format!(
        "Query is too complex: {found} {what}, the limit is {limit}"
    ))
}

/// Counts tokens and bracket nesting without building anything; stops at the
/// first limit crossed. Malformed text (an unterminated string) is left to
/// the parser, which meets it within the same bounds.
pub fn check_lexical(src: &str, budget: &Budget) -> Result<(), ServerError> {
    let b = src.as_bytes();
    let n = b.len();
    let (mut i, mut tokens, mut nesting) = (0usize, 0usize, 0usize);
    let starts = |at: usize, pat: &[u8]| b.get(at..at + pat.len()) == Some(pat);
    while i < n {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < n && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if starts(i, b"\"\"\"") => {
                i += 3;
                while i < n {
                    if starts(i, b"\\\"\"\"") {
                        i += 4;
                    } else if starts(i, b"\"\"\"") {
                        i += 3;
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                i += 1;
                while i < n {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\n' | b'\r' => break,
                        _ => i += 1,
                    }
                }
            }
            b'{' | b'[' | b'(' => {
                nesting += 1;
                if nesting > MAX_NESTING {
                    return Err(refusal(format!(
                        "Query is nested too deep: brackets nested more than {MAX_NESTING} deep"
                    )));
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                nesting = nesting.saturating_sub(1);
                i += 1;
            }
            b'.' if starts(i, b"...") => i += 3,
            b'!' | b'$' | b'&' | b':' | b'=' | b'@' | b'|' | b'.' => i += 1,
            _ => {
                // A name, a number, or a byte the parser will reject.
                while i < n
                    && !matches!(
                        b[i],
                        b' ' | b'\t'
                            | b'\n'
                            | b'\r'
                            | b','
                            | b'#'
                            | b'"'
                            | b'{'
                            | b'}'
                            | b'['
                            | b']'
                            | b'('
                            | b')'
                            | b'!'
                            | b'$'
                            | b'&'
                            | b':'
                            | b'='
                            | b'@'
                            | b'|'
                    )
                {
                    i += 1;
                }
            }
        }
        tokens += 1;
        if tokens > budget.max_tokens {
            return Err(too_complex(
                "tokens",
                format!("more than {}", budget.max_tokens),
                budget.max_tokens,
            ));
        }
    }
    Ok(())
}

/// What a parsed document holds, as written and as it would expand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub aliases: usize,
    pub fragment_spreads: usize,
    pub directives: usize,
    /// Saturating: a fan-out may exceed `u64`.
    pub selections: u64,
    pub depth: usize,
}

fn count_written(set: &SelectionSet, shape: &mut Shape) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                shape.aliases += usize::from(f.node.alias.is_some());
                shape.directives += f.node.directives.len();
                count_written(&f.node.selection_set.node, shape);
            }
            Selection::FragmentSpread(s) => {
                shape.fragment_spreads += 1;
                shape.directives += s.node.directives.len();
            }
            Selection::InlineFragment(f) => {
                shape.directives += f.node.directives.len();
                count_written(&f.node.selection_set.node, shape);
            }
        }
    }
}

enum Expansion {
    InProgress,
    Done { selections: u64, depth: usize },
}

/// Most selection sets nested in one another, through fragments, that the
/// expansion follows: twice async-graphql's own recursion limit (32, checked
/// after this), so that only documents it would refuse anyway are refused
/// here, and the stack stays small whatever a chain of fragments nests.
const MAX_RECURSION: usize = 64;

/// Expanded size and depth of a selection set, each fragment computed once.
fn expand<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    memo: &mut HashMap<&'d str, Expansion>,
    level: usize,
) -> Result<(u64, usize), ServerError> {
    if level > MAX_RECURSION {
        return Err(refusal(format!(
            "Query is nested too deep: selections nested more than {MAX_RECURSION} deep through fragments"
        )));
    }
    let level = level + 1;
    let (mut selections, mut depth) = (0u64, 0usize);
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let (s, d) = expand(doc, &f.node.selection_set.node, memo, level)?;
                selections = selections.saturating_add(s).saturating_add(1);
                // Introspection reads the static schema only, and GraphiQL's
                // query nests `ofType` eight deep: its nesting is bounded by
                // brackets and selections instead.
                let d = if f.node.name.node.starts_with("__") {
                    0
                } else {
                    d
                };
                depth = depth.max(d + 1);
            }
            Selection::InlineFragment(f) => {
                let (s, d) = expand(doc, &f.node.selection_set.node, memo, level)?;
                selections = selections.saturating_add(s).saturating_add(1);
                depth = depth.max(d);
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                let (s, d) = match memo.get(name) {
                    Some(Expansion::Done { selections, depth }) => (*selections, *depth),
                    Some(Expansion::InProgress) => {
                        return Err(refusal(format!(
                            "Query is too complex: the fragment \"{name}\" spreads itself"
                        )))
                    }
                    // An unknown fragment is reported by validation.
                    None => match doc.fragments.get(name) {
                        None => (0, 0),
                        Some(fragment) => {
                            memo.insert(name, Expansion::InProgress);
                            let (s, d) =
                                expand(doc, &fragment.node.selection_set.node, memo, level)?;
                            memo.insert(
                                name,
                                Expansion::Done {
                                    selections: s,
                                    depth: d,
                                },
                            );
                            (s, d)
                        }
                    },
                };
                selections = selections.saturating_add(s).saturating_add(1);
                depth = depth.max(d);
            }
        }
    }
    Ok((selections, depth))
}

/// The shape of a document, or a refusal for a fragment cycle. Linear in the
/// document; recursion is bounded by [`MAX_NESTING`] and `MAX_RECURSION`.
pub fn check_shape(doc: &ExecutableDocument, budget: &Budget) -> Result<Shape, ServerError> {
    let mut shape = Shape::default();
    for (_, op) in doc.operations.iter() {
        shape.directives += op.node.directives.len();
        count_written(&op.node.selection_set.node, &mut shape);
    }
    for fragment in doc.fragments.values() {
        shape.directives += fragment.node.directives.len();
        count_written(&fragment.node.selection_set.node, &mut shape);
    }
    if shape.aliases > budget.max_aliases {
        return Err(too_complex("aliases", shape.aliases, budget.max_aliases));
    }
    if shape.fragment_spreads > budget.max_fragment_spreads {
        return Err(too_complex(
            "fragment spreads",
            shape.fragment_spreads,
            budget.max_fragment_spreads,
        ));
    }
    if shape.directives > budget.max_directives {
        return Err(too_complex(
            "directives",
            shape.directives,
            budget.max_directives,
        ));
    }
    let mut memo = HashMap::new();
    for (_, op) in doc.operations.iter() {
        let (s, d) = expand(doc, &op.node.selection_set.node, &mut memo, 0)?;
        shape.selections = shape.selections.saturating_add(s);
        shape.depth = shape.depth.max(d);
    }
    if shape.selections > budget.max_selections {
        let found = if shape.selections == u64::MAX {
            "more than 2^64".to_string()
        } else {
            shape.selections.to_string()
        };
        return Err(too_complex(
            "selections once fragments are expanded",
            found,
            budget.max_selections,
        ));
    }
    if shape.depth > budget.max_depth {
        return Err(refusal(format!(
            "Query is nested too deep: depth {}, the limit is {}",
            shape.depth, budget.max_depth
        )));
    }
    Ok(shape)
}

/// Every check before validation, on a request's text; answers the parsed
/// document so that async-graphql does not parse it again.
pub fn check_document(query: &str, budget: &Budget) -> Result<ExecutableDocument, ServerError> {
    if query.len() > budget.max_bytes {
        return Err(too_complex("bytes", query.len(), budget.max_bytes));
    }
    check_lexical(query, budget)?;
    let doc = async_graphql::parser::parse_query(query).map_err(|e| {
        let mut e = ServerError::from(e);
        e.extensions
            .get_or_insert_with(Default::default)
            .set("code", "INVALID_INPUT");
        e
    })?;
    check_shape(&doc, budget)?;
    Ok(doc)
}

// ---- Applied by the schema's extension (`graphql::Guard`) ----------------------------------------

/// Checks `request`'s document against the caller's or the anonymous budget
/// and hands the parsed document on, so that it is parsed once.
pub(crate) fn prepare(
    limits: &QueryLimits,
    has_caller: bool,
    mut request: Request,
) -> ServerResult<Request> {
    let budget = if has_caller {
        &limits.caller
    } else {
        &limits.anonymous
    };
    let doc = check_document(&request.query, budget)?;
    request.set_parsed_query(doc);
    Ok(request)
}

/// Refuses a validated document whose cost is over the limit.
pub(crate) fn check_cost(
    limits: &QueryLimits,
    result: ValidationResult,
) -> Result<ValidationResult, Vec<ServerError>> {
    if result.complexity > limits.max_cost {
        return Err(vec![refusal(format!(
            "Query is too complex: it costs {}, the limit is {} (lists count their typical length, studentAsOf {}; see docs/operations.md)",
            result.complexity,
            limits.max_cost,
            weight::AS_OF
        ))]);
    }
    Ok(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fan_out(levels: usize) -> String {
        let mut q = format!("query{{me{{...F{levels}}}}} fragment F0 on Person{{id displayName}}");
        for i in 1..=levels {
            q.push_str(&format!(
                " fragment F{i} on Person{{...F{} ...F{}}}",
                i - 1,
                i - 1
            ));
        }
        q
    }

    #[test]
    fn a_fan_out_is_measured_without_being_expanded() {
        let doc = async_graphql::parser::parse_query(fan_out(24)).unwrap();
        let mut wide = Budget::CALLER;
        wide.max_selections = u64::MAX;
        let shape = check_shape(&doc, &wide).unwrap();
        // F(i) expands to 2 + 2 * F(i-1) selections, F0 to 2: F24 to 2^26 - 2,
        // plus `me` and its spread.
        assert_eq!(shape.selections, 1 << 26);
        assert_eq!(shape.depth, 2);
        let e = check_shape(&doc, &Budget::CALLER).unwrap_err();
        assert!(e.message.contains("selections"), "{}", e.message);
    }

    #[test]
    fn a_long_chain_of_nested_fragments_is_refused_without_deep_recursion() {
        let mut q = String::from("{ me { ...F0 } }");
        for i in 0..40 {
            q.push_str(&format!(
                " fragment F{i} on Person {{ a {{ b {{ ...F{} }} }} }}",
                i + 1
            ));
        }
        q.push_str(" fragment F40 on Person { id }");
        let doc = async_graphql::parser::parse_query(q).unwrap();
        let mut deep = Budget::CALLER;
        deep.max_depth = usize::MAX;
        let e = check_shape(&doc, &deep).unwrap_err();
        assert!(e.message.contains("through fragments"), "{}", e.message);
    }

    #[test]
    fn a_fragment_cycle_is_refused() {
        let q = "{ me { ...A } } fragment A on Person { ...B } fragment B on Person { id ...A }";
        let doc = async_graphql::parser::parse_query(q).unwrap();
        let e = check_shape(&doc, &Budget::CALLER).unwrap_err();
        assert!(e.message.contains("spreads itself"), "{}", e.message);
    }

    #[test]
    fn tokens_are_counted_as_the_grammar_splits_them() {
        let mut b = Budget::CALLER;
        b.max_tokens = 12;
        // { a ( x : "s\"}" ) ... F @ d } # comment
        assert!(check_lexical(r#"{ a(x: "s\"}") ...F @d } # a comment { { {"#, &b).is_ok());
        b.max_tokens = 11;
        assert!(check_lexical(r#"{ a(x: "s\"}") ...F @d } # a comment { { {"#, &b).is_err());
        b.max_tokens = 3;
        assert!(check_lexical(r#"{ """ { { \""" { """ }"#, &b).is_ok());
        let deep = "{".repeat(MAX_NESTING + 1);
        assert!(check_lexical(&deep, &Budget::CALLER).is_err());
    }

    #[test]
    fn the_lexical_pass_takes_any_text_without_panicking() {
        for s in [
            "\"",
            "\"\"\"",
            "\"\\",
            "é{\"\\é",
            "...",
            "..",
            "#",
            "\u{feff}{}",
            "\"\"\"\\\"\"\"",
        ] {
            let _ = check_lexical(s, &Budget::ANONYMOUS);
        }
    }

    #[test]
    fn weights_saturate_below_the_cap() {
        assert_eq!(list(30, 2), 61);
        assert_eq!(list(usize::MAX, usize::MAX), COST_CAP);
        assert_eq!(fixed(weight::AS_OF, usize::MAX), COST_CAP);
    }
}
