//! `registre demo`: a realistic collège in the log, tokens to explore it, and
//! a server to explore it with.
//!
//! The collège is generated from a seed (same seed, same collège): 4 levels,
//! 16 classes, about 400 students with their guardians (siblings share them,
//! some guardians teach there too), 30 teachers over ten subjects, a CPE, a
//! head, an admin and an auditor, and one term of assessments, grades (a few
//! corrected), absences and lateness in every justification state, homework
//! and messages: some 25,000 events, appended in large all-or-nothing batches.
//! Each stream is written whole in one append with `NoStream`, so the stream
//! versions are exactly the ones the domain would produce, and streams are
//! written in dependency order (a class before its students, an assessment
//! before its grades). A second run on the same store finds the demo's
//! establishment and skips the seeding.

mod evaluation;

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone as _, Utc, Weekday};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use registre_domain::{events::*, *};
use registre_projections::Partitioner;
use registre_store::{
    Actor, AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, Partition,
};
use uuid::Uuid;

use crate::config::{Config, Database};

// discipline (issue 15)
mod discipline;
// school day (issue 13)
mod school_day;
// communication (issue 16)
mod communication;
use registre_api::{
    auth::{jwks_json, SigningKey, TokenClaims},
    config::{AuthConfig, JwksSource},
};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seed of the generator: the same seed gives the same collège.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Delete the demo data directory first (embedded store only).
    #[arg(long)]
    pub reset: bool,
    /// Seed and print the tokens, but do not serve.
    #[arg(long)]
    pub no_serve: bool,
}

/// Issuer and audience of the demo's tokens.
pub const DEMO_ISSUER: &str = "registre-demo";
pub const DEMO_AUDIENCE: &str = "registre-demo";
/// The admin the demo configures in REGISTRE_ADMIN_SUBJECTS.
pub const DEMO_ADMIN: &str = "demo-admin";
const STREAMS_PER_BATCH: usize = 400;

const FIRST_NAMES: &[&str] = &[
    "Léa", "Lucas", "Emma", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Camille", "Arthur",
    "Inès", "Jules", "Sarah", "Raphaël", "Jade", "Adam", "Louise", "Nathan", "Zoé", "Ethan",
    "Alice", "Tom", "Lina", "Noah", "Rose", "Léo", "Anna", "Théo", "Juliette", "Sacha", "Mila",
    "Paul", "Ambre", "Mathis", "Lou", "Nolan", "Clara", "Enzo", "Margaux", "Maël", "Yasmine",
    "Karim", "Aïcha", "Mehdi", "Nina", "Timéo", "Éloïse", "Baptiste",
];
const ADULT_FIRST_NAMES: &[&str] = &[
    "Nathalie",
    "Stéphane",
    "Isabelle",
    "Christophe",
    "Sandrine",
    "Frédéric",
    "Céline",
    "Olivier",
    "Valérie",
    "Nicolas",
    "Sophie",
    "Laurent",
    "Karine",
    "Sébastien",
    "Aurélie",
    "Julien",
    "Élodie",
    "David",
    "Virginie",
    "Thierry",
    "Fatima",
    "Rachid",
    "Nadia",
    "Mohamed",
    "Hélène",
    "Philippe",
    "Caroline",
    "Éric",
    "Delphine",
    "Marc",
];
const LAST_NAMES: &[&str] = &[
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Lefèvre",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guérin",
    "Muller",
    "Henry",
    "Roussel",
    "Nicolas",
    "Perrin",
    "Morin",
    "Mathieu",
    "Clément",
    "Gauthier",
    "Dumont",
    "Lopez",
    "Fontaine",
    "Chevalier",
    "Robin",
    "Benali",
    "Nguyen",
    "Haddad",
    "Da Silva",
    "Diallo",
];
/// Subjects, how many teachers teach each, and the homework they set.
const SUBJECTS: &[(&str, usize, &[&str])] = &[
    (
        "Français",
        4,
        &[
            "Lire le chapitre",
            "Rédaction",
            "Apprendre la poésie",
            "Dictée préparée",
        ],
    ),
    (
        "Mathématiques",
        4,
        &[
            "Exercices page 42",
            "Fiche de calcul mental",
            "Problème à rédiger",
            "Revoir le cours",
        ],
    ),
    (
        "Histoire-Géographie",
        3,
        &[
            "Apprendre la leçon",
            "Croquis à compléter",
            "Frise chronologique",
        ],
    ),
    (
        "Anglais",
        4,
        &["Vocabulary list", "Workbook exercises", "Oral presentation"],
    ),
    (
        "SVT",
        3,
        &[
            "Schéma à légender",
            "Compte rendu d'expérience",
            "Apprendre le bilan",
        ],
    ),
    (
        "Physique-Chimie",
        3,
        &[
            "Exercices du manuel",
            "Protocole à rédiger",
            "Apprendre les formules",
        ],
    ),
    (
        "Technologie",
        2,
        &["Dossier projet", "Recherche documentaire"],
    ),
    ("EPS", 3, &["Apporter sa tenue", "Fiche d'échauffement"]),
    (
        "Arts plastiques",
        2,
        &["Croquis d'observation", "Terminer la production"],
    ),
    (
        "Éducation musicale",
        2,
        &["Apprendre le chant", "Écoute commentée"],
    ),
];
const LEVELS: &[&str] = &["6e", "5e", "4e", "3e"];
const SECTIONS: &[&str] = &["A", "B", "C", "D"];
const ABSENCE_REASONS: &[&str] = &[
    "Rendez-vous médical",
    "Malade, certificat joint",
    "Raison familiale",
    "Transport scolaire en retard",
    "Convocation administrative",
];

/// Who the demo prints a token for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoAccount {
    pub role: &'static str,
    pub subject: String,
    pub display_name: String,
}

/// What the seeding produced (or found).
#[derive(Clone, Debug)]
pub struct DemoSummary {
    pub seeded: bool,
    pub events: u64,
    pub accounts: Vec<DemoAccount>,
}

/// `registre demo`: seed (unless already there), write the demo JWKS, print
/// tokens, serve.
pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    if args.reset {
        match &config.database {
            Database::Embedded(dir) => {
                let file = crate::node::embedded_path(dir);
                for suffix in ["", "-wal", "-shm"] {
                    let path = format!("{}{suffix}", file.display());
                    match std::fs::remove_file(&path) {
                        Ok(()) => println!("removed {path}"),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e).with_context(|| format!("removing {path}")),
                    }
                }
            }
            Database::Postgres(_) => bail!("--reset only applies to the embedded store; with DATABASE_URL, drop the database yourself"),
        }
    }
    let store = crate::node::open_store(&config).await?;
    let summary = seed(store.as_ref(), args.seed, true).await?;
    if summary.seeded {
        println!("seeded the demo collège: {} events", summary.events);
    } else {
        println!("the demo collège is already in the store ({} events); seeding skipped (use --reset to start over)", summary.events);
    }

    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {} (REGISTRE_DATA_DIR)", config.data_dir.display()))?;
    let key = SigningKey::generate_es256(&format!("demo-{}", Uuid::new_v4().simple()))?;
    let jwks_path = config.data_dir.join("demo-jwks.json");
    std::fs::write(&jwks_path, jwks_json(&[&key]).to_string())
        .with_context(|| format!("writing {}", jwks_path.display()))?;
    // Web Push needs a VAPID key (issue 16): the demo makes one once.
    if config.communication.vapid_key.is_none() {
        let vapid_path = config.data_dir.join("demo-vapid.pem");
        if !vapid_path.exists() {
            let pem = registre_app::notify::VapidKey::generate_pem()
                .map_err(|e| anyhow::anyhow!("making the VAPID key: {e}"))?;
            std::fs::write(&vapid_path, pem)
                .with_context(|| format!("writing {}", vapid_path.display()))?;
        }
        config.communication.vapid_key = Some(vapid_path);
    }
    config.auth = Some(AuthConfig {
        jwks: JwksSource::File(jwks_path),
        issuer: DEMO_ISSUER.into(),
        audience: DEMO_AUDIENCE.into(),
        admin_subjects: [DEMO_ADMIN.to_string()].into_iter().collect(),
        leeway: Duration::from_secs(60),
        refetch_min_interval: Duration::from_secs(30),
        refresh_interval: Duration::from_secs(60),
        roles_claim: None,
    });

    let mut tokens = Vec::with_capacity(summary.accounts.len());
    for account in &summary.accounts {
        let claims = TokenClaims::new(
            &account.subject,
            DEMO_ISSUER,
            DEMO_AUDIENCE,
            Duration::from_secs(30 * 86_400),
        );
        tokens.push((account, key.sign(&claims)?));
    }
    let print_tokens = |addr: SocketAddr| {
        println!("\nBearer tokens (valid 30 days; paste `Authorization: Bearer <token>` in GraphiQL's headers),");
        println!("each with the address of the pages signed in as that person:");
        for (account, token) in &tokens {
            println!(
                "\n  {} — {} ({})\n  {}\n  {}",
                account.role,
                account.display_name,
                account.subject,
                token,
                page_url(addr, token)
            );
        }
    };
    if args.no_serve {
        print_tokens(config.listen);
        return Ok(());
    }
    let server = crate::node::serve(&config, store, crate::node::shutdown_signal()).await?;
    if let Err(reason) = server.wait_ready(Duration::from_secs(60)).await {
        tracing::warn!(%reason, "serving before the read model caught up");
    }
    // pages (issue 18): printed once the node listens, with its real address.
    print_tokens(server.addr);
    println!(
        "\nPages: http://{}/   GraphiQL: http://{}/graphql   (Ctrl-C to stop)",
        browsable(server.addr),
        browsable(server.addr)
    );
    server.stopped().await;
    Ok(())
}

// pages (issue 18)
/// The address of the pages (`/`) signed in as the token's holder: the token
/// rides in the fragment, which browsers never send to a server, and the
/// page moves it into the tab's session storage at once.
pub fn page_url(addr: SocketAddr, token: &str) -> String {
    format!("http://{}/#token={token}", browsable(addr))
}

/// An address a browser on this machine can open (0.0.0.0 is not one).
fn browsable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

/// Seeds the demo collège into `store` unless it is already there. Refuses
/// a store that holds other data, so that the demo never mixes with a real log.
pub async fn seed(
    store: &dyn EventStore,
    seed: u64,
    progress: bool,
) -> anyhow::Result<DemoSummary> {
    let plan = Plan::generate(seed, Utc::now())?;
    let head = store.head().await.context("reading the log head")?;
    let marker = StreamName::establishment(plan.establishment).into_string();
    if head > 0 {
        let existing = store
            .read_stream(&marker, 0)
            .await
            .context("looking for the demo establishment")?;
        if existing.is_empty() {
            bail!("the store already holds {head} events that are not this demo's (seed {seed}); use an empty data directory or database");
        }
        return Ok(DemoSummary {
            seeded: false,
            events: head,
            accounts: plan.accounts,
        });
    }
    let bar = if progress {
        let bar = ProgressBar::new(plan.events as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message("seeding");
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut written = 0u64;
    let mut requests = plan.requests.into_iter().peekable();
    while requests.peek().is_some() {
        let batch: Vec<AppendRequest> = requests.by_ref().take(STREAMS_PER_BATCH).collect();
        let n: usize = batch.iter().map(|r| r.events.len()).sum();
        store
            .append_batch(batch)
            .await
            .context("appending the demo events")?;
        written += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_with_message("seeded");
    Ok(DemoSummary {
        seeded: true,
        events: written,
        accounts: plan.accounts,
    })
}

/// The whole collège as append requests, in dependency order.
struct Plan {
    establishment: EstablishmentId,
    requests: Vec<AppendRequest>,
    events: usize,
    accounts: Vec<DemoAccount>,
}

/// One event of a stream being written: by whom, when, and why.
type Entry = (
    DomainEvent,
    Option<PersonInfo>,
    DateTime<Utc>,
    Option<String>,
);

#[derive(Clone, Copy)]
struct PersonInfo {
    id: PersonId,
    role: Role,
}

struct Builder {
    rng: StdRng,
    requests: Vec<AppendRequest>,
    partitions: Partitioner,
    events: usize,
    /// Millisecond clock of the generated ids, advanced per event so that ids
    /// are time-ordered UUIDv7s yet fully determined by the seed.
    clock_ms: u64,
}

impl Builder {
    fn uuid(&mut self) -> Uuid {
        let bytes: [u8; 16] = self.rng.gen();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn event_id(&mut self) -> Uuid {
        self.clock_ms += 1;
        let random: [u8; 10] = self.rng.gen();
        uuid::Builder::from_unix_timestamp_millis(self.clock_ms, &random).into_uuid()
    }

    /// One whole stream, written from scratch.
    fn stream(&mut self, events: Vec<Entry>) {
        let Some((first, ..)) = events.first() else {
            return;
        };
        let stream_id = first.stream().into_string();
        let correlation_id = self.uuid();
        let mut new_events = Vec::with_capacity(events.len());
        let mut partition = None;
        for (event, actor, at, reason) in events {
            debug_assert_eq!(event.stream().as_str(), stream_id, "one stream per append");
            partition.get_or_insert(self.partitions.assign(&stream_id, &event));
            let encoded = event.encode();
            new_events.push(NewEvent {
                event_id: self.event_id(),
                event_type: encoded.event_type.to_string(),
                schema_version: encoded.schema_version,
                data: encoded.data,
                metadata: EventMetadata {
                    actor: actor.map(|p| Actor {
                        person_id: p.id.as_uuid(),
                        role: p.role.wire_name().into(),
                    }),
                    correlation_id,
                    causation_id: None,
                    idempotency_key: None,
                    occurred_at: at,
                    reason,
                },
            });
        }
        self.events += new_events.len();
        self.requests.push(AppendRequest {
            partition: partition.unwrap_or_else(Partition::directory),
            stream_id,
            expected: ExpectedVersion::NoStream,
            events: new_events,
            idempotency: None,
        });
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.gen_range(0..items.len())]
    }
}

/// 08:00 + `hour` on `day`, Paris time (the term is in one offset: CET/CEST
/// differences are handled by chrono-tz).
fn at(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let naive = day.and_hms_opt(hour, minute, 0).unwrap_or_default();
    chrono_tz::Europe::Paris
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

fn school_days(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        // Toussaint holidays.
        .filter(|d| !(d.month() == 10 && d.day() >= 18 || d.month() == 11 && d.day() <= 2))
        .collect()
}

impl Plan {
    /// The collège generated from `seed`; `now` says which courses are over
    /// (their roll calls taken) and which week is the current one.
    fn generate(seed: u64, now: DateTime<Utc>) -> anyhow::Result<Plan> {
        let mut b = Builder {
            rng: StdRng::seed_from_u64(seed),
            requests: Vec::new(),
            partitions: Partitioner::new(),
            events: 0,
            clock_ms: 1_788_220_800_000, // 2026-09-01
        };
        let term_start = NaiveDate::from_ymd_opt(2026, 9, 1).context("term start")?;
        let term_end = NaiveDate::from_ymd_opt(2026, 11, 27).context("term end")?;
        let days = school_days(term_start, term_end);
        let setup_time = at(
            NaiveDate::from_ymd_opt(2026, 8, 28).context("setup day")?,
            9,
            0,
        );

        // The establishment.
        let establishment = EstablishmentId(b.uuid());
        let mut calendar = vec![(
            DomainEvent::EstablishmentCreated(EstablishmentCreated {
                establishment_id: establishment,
                uai: Uai::parse("0751234A").map_err(|e| anyhow::anyhow!("{e}"))?,
                name: "Collège Jean Moulin".into(),
                time_zone: TimeZone::DEFAULT,
            }),
            None,
            setup_time,
            None,
        )];
        calendar.extend(school_day::calendar(establishment, setup_time));
        b.stream(calendar);

        let mut accounts = Vec::new();
        let mut used_names = BTreeSet::new();
        let register = |b: &mut Builder,
                        external: String,
                        name: String,
                        roles: Vec<Role>,
                        with_establishment: bool|
         -> PersonInfo {
            let id = PersonId::for_external_id(&external);
            b.stream(vec![(
                DomainEvent::PersonRegistered(PersonRegistered {
                    person_id: id,
                    external_id: external,
                    display_name: name,
                    roles: roles.clone(),
                    establishment_id: with_establishment.then_some(establishment),
                }),
                None,
                setup_time,
                None,
            )]);
            PersonInfo { id, role: roles[0] }
        };
        let mut adult_name = |b: &mut Builder| loop {
            let name = format!("{} {}", b.pick(ADULT_FIRST_NAMES), b.pick(LAST_NAMES));
            if used_names.insert(name.clone()) {
                return name;
            }
        };

        let staff = [
            (DEMO_ADMIN, Role::Admin, false),
            ("demo-head", Role::Head, true),
            ("demo-cpe", Role::EducationStaff, true),
            ("demo-auditor", Role::Auditor, false),
        ];
        let mut cpe = None;
        let mut head = None;
        for (external, role, with_establishment) in staff {
            let name = adult_name(&mut b);
            let info = register(
                &mut b,
                external.into(),
                name.clone(),
                vec![role],
                with_establishment,
            );
            if role == Role::EducationStaff {
                cpe = Some(info);
            }
            if role == Role::Head {
                head = Some(info);
            }
            accounts.push(DemoAccount {
                role: role.wire_name(),
                subject: external.into(),
                display_name: name,
            });
        }
        let cpe = cpe.context("the CPE is registered above")?;
        let head = head.context("the head is registered above")?;

        // Teachers, per subject. Every fifth teacher also has children here.
        let mut teachers: Vec<(PersonInfo, String, &str)> = Vec::new();
        let mut n = 0;
        for (subject, count, _) in SUBJECTS {
            for _ in 0..*count {
                n += 1;
                let external = format!("teacher-{n:02}");
                let name = adult_name(&mut b);
                let roles = if n % 5 == 0 {
                    vec![Role::Teacher, Role::Guardian]
                } else {
                    vec![Role::Teacher]
                };
                let info = register(&mut b, external.clone(), name.clone(), roles, true);
                teachers.push((info, name, subject));
            }
        }

        // Classes and who teaches what in each.
        let mut classes = Vec::new();
        for level in LEVELS {
            for section in SECTIONS {
                classes.push((ClassId(b.uuid()), format!("{level}{section}")));
            }
        }
        let mut class_teachers: Vec<Vec<(PersonInfo, &str)>> = Vec::new();
        for (ci, (class_id, name)) in classes.iter().enumerate() {
            let mut events = vec![(
                DomainEvent::ClassCreated(ClassCreated {
                    class_id: *class_id,
                    establishment_id: establishment,
                    name: name.clone(),
                }),
                None,
                setup_time,
                None,
            )];
            let mut assigned = Vec::new();
            for (subject, _, _) in SUBJECTS {
                let candidates: Vec<&(PersonInfo, String, &str)> =
                    teachers.iter().filter(|(_, _, s)| s == subject).collect();
                let (teacher, _, _) = candidates[ci % candidates.len()];
                events.push((
                    DomainEvent::TeacherAssigned(TeacherAssigned {
                        class_id: *class_id,
                        teacher_id: teacher.id,
                        subject: (*subject).into(),
                    }),
                    None,
                    setup_time,
                    None,
                ));
                assigned.push((*teacher, *subject));
            }
            b.stream(events);
            class_teachers.push(assigned);
        }
        let first_teacher = &teachers[0];
        accounts.push(DemoAccount {
            role: Role::Teacher.wire_name(),
            subject: "teacher-01".into(),
            display_name: first_teacher.1.clone(),
        });

        // Families: 1 to 3 children, 1 or 2 guardians; the teacher-guardians
        // head a family each.
        let teacher_parents: Vec<PersonInfo> = teachers
            .iter()
            .enumerate()
            .filter(|(i, _)| (i + 1) % 5 == 0)
            .map(|(_, t)| t.0)
            .collect();
        let mut students: Vec<(PersonInfo, StudentId, usize, String)> = Vec::new(); // person, id, class index, name
        let mut student_guardians: Vec<Vec<PersonInfo>> = Vec::new();
        let mut guardian_n = 0;
        let mut student_n = 0;
        let mut family = 0;
        let mut demo_guardian: Option<(String, String)> = None;
        let mut demo_student: Option<(String, String)> = None;
        let total_students = 400;
        while student_n < total_students {
            let last_name = b.pick(LAST_NAMES).to_string();
            let children = match b.rng.gen_range(0..10) {
                0..=5 => 1,
                6..=8 => 2,
                _ => 3,
            }
            .min(total_students - student_n);
            let mut guardians = Vec::new();
            if let Some(teacher) = teacher_parents.get(family) {
                guardians.push(*teacher);
            }
            let wanted = if b.rng.gen_bool(0.75) { 2 } else { 1 };
            let mut names = Vec::new();
            while guardians.len() < wanted {
                guardian_n += 1;
                let external = format!("guardian-{guardian_n:04}");
                let name = format!("{} {last_name}", b.pick(ADULT_FIRST_NAMES));
                guardians.push(register(
                    &mut b,
                    external.clone(),
                    name.clone(),
                    vec![Role::Guardian],
                    false,
                ));
                names.push((external, name));
            }
            if children == 2 && demo_guardian.is_none() {
                demo_guardian = names.first().cloned();
            }
            // Siblings sit in different levels where possible.
            let mut levels: Vec<usize> = (0..LEVELS.len()).collect();
            levels.shuffle(&mut b.rng);
            for child in 0..children {
                student_n += 1;
                let level = levels[child % levels.len()];
                let class_index = level * SECTIONS.len() + b.rng.gen_range(0..SECTIONS.len());
                let external = format!("student-{student_n:04}");
                let name = format!("{} {last_name}", b.pick(FIRST_NAMES));
                let person = register(
                    &mut b,
                    external.clone(),
                    name.clone(),
                    vec![Role::Student],
                    true,
                );
                if demo_student.is_none() {
                    demo_student = Some((external, name.clone()));
                }
                students.push((person, StudentId::for_person(person.id), class_index, name));
                student_guardians.push(guardians.clone());
            }
            family += 1;
        }
        for ((person, student_id, class_index, _), guardians) in
            students.iter().zip(&student_guardians)
        {
            let mut events = vec![(
                DomainEvent::StudentEnrolled(StudentEnrolled {
                    student_id: *student_id,
                    person_id: person.id,
                    class_id: classes[*class_index].0,
                }),
                None,
                setup_time,
                None,
            )];
            for g in guardians {
                events.push((
                    DomainEvent::GuardianLinked(GuardianLinked {
                        student_id: *student_id,
                        guardian_id: g.id,
                    }),
                    None,
                    setup_time,
                    None,
                ));
            }
            b.stream(events);
        }
        let (subject, name) = demo_guardian.context("a family with two children")?;
        let demo_guardian_id = PersonId::for_external_id(&subject);
        accounts.push(DemoAccount {
            role: Role::Guardian.wire_name(),
            subject,
            display_name: name,
        });
        let (subject, name) = demo_student.context("a student")?;
        accounts.push(DemoAccount {
            role: Role::Student.wire_name(),
            subject,
            display_name: name,
        });
        // Tokens in a fixed order: the brief's.
        let order = [
            Role::Guardian,
            Role::Student,
            Role::Teacher,
            Role::EducationStaff,
            Role::Head,
            Role::Admin,
            Role::Auditor,
        ]
        .map(Role::wire_name);
        accounts.sort_by_key(|a| {
            order
                .iter()
                .position(|r| *r == a.role)
                .unwrap_or(order.len())
        });

        // Assessments and grades: 4 per class and subject over the term,
        // decided by the domain as the API would (scores within `outOf`, one
        // grade per student, corrections that change something).
        for (ci, (class_id, _)) in classes.iter().enumerate() {
            let class_students: Vec<StudentId> =
                students.iter().filter(|s| s.2 == ci).map(|s| s.1).collect();
            for (teacher, subject) in class_teachers[ci].clone() {
                for k in 0..4 {
                    let day = days[(k * days.len() / 4 + b.rng.gen_range(0..days.len() / 4))
                        .min(days.len() - 1)];
                    let assessment_id = AssessmentId(b.uuid());
                    let out_of = if b.rng.gen_bool(0.8) { 20.0 } else { 10.0 };
                    let coefficient = *b.pick(&[1.0, 1.0, 2.0, 0.5]);
                    let mut state = grades::Assessment::default();
                    let mut events = Vec::new();
                    let create = grades::CreateAssessment {
                        assessment_id,
                        class_id: *class_id,
                        teacher_id: teacher.id,
                        subject: subject.into(),
                        title: format!(
                            "{} n°{}",
                            if k == 3 { "Contrôle" } else { "Évaluation" },
                            k + 1
                        ),
                        date: day,
                        coefficient,
                        out_of,
                    };
                    let decision = grades::create_assessment(
                        &state,
                        &create,
                        &grades::AssessmentFacts {
                            class_exists: true,
                            class_closed: None,
                        },
                    );
                    decided(
                        &mut state,
                        decision,
                        (teacher, at(day, 10, 0), None),
                        &mut events,
                    )?;
                    let graded_at = at(day.checked_add_days(Days::new(5)).unwrap_or(day), 18, 0);
                    let facts = grades::GradeFacts {
                        student_class: Some(*class_id),
                    };
                    let mut recorded = Vec::new();
                    for student_id in &class_students {
                        let (status, score) = match b.rng.gen_range(0..100) {
                            0..=2 => (GradeStatus::Absent, None),
                            3 => (GradeStatus::Exempt, None),
                            4 => (GradeStatus::NotSubmitted, None),
                            _ => {
                                let mean = out_of * 0.65;
                                let raw: f64 = mean + (b.rng.gen::<f64>() - 0.5) * out_of * 0.8;
                                (
                                    GradeStatus::Graded,
                                    Some((raw.clamp(0.0, out_of) * 2.0).round() / 2.0),
                                )
                            }
                        };
                        let record = grades::RecordGrade {
                            assessment_id,
                            student_id: *student_id,
                            score,
                            status,
                        };
                        recorded.push((record.grade_id(), score));
                        let decision = grades::record_grade(&state, &record, &facts);
                        decided(
                            &mut state,
                            decision,
                            (teacher, graded_at, None),
                            &mut events,
                        )?;
                    }
                    // About one grade in a hundred is corrected.
                    for (grade_id, score) in recorded {
                        if b.rng.gen_range(0..100) != 0 {
                            continue;
                        }
                        let (new_score, reason) = match score {
                            Some(s) if s < out_of => {
                                ((s + 1.0).min(out_of), "Erreur de report de la note")
                            }
                            Some(s) => (s - 1.0, "Erreur de report de la note"),
                            None => (out_of / 2.0, "Devoir rendu en retard, noté"),
                        };
                        let correct = grades::CorrectGrade {
                            grade_id,
                            score: Some(new_score),
                            status: GradeStatus::Graded,
                            reason: reason.into(),
                        };
                        let decision = grades::correct_grade(&state, &correct);
                        let when = graded_at + chrono::Duration::days(2);
                        decided(
                            &mut state,
                            decision,
                            (teacher, when, Some(reason)),
                            &mut events,
                        )?;
                    }
                    b.stream(events);
                }
            }
        }

        // Absences and lateness, in every justification state, decided by the
        // domain: roll calls, declarations in advance, justifications,
        // reviews and cancellations.
        for ((_, student_id, class_index, _), guardians) in students.iter().zip(&student_guardians)
        {
            let count = b.rng.gen_range(0..=5);
            // The demo guardian's children always have some, to show.
            let count = if guardians.iter().any(|g| g.id == demo_guardian_id) {
                count.max(3)
            } else {
                count
            };
            let student_class = Some(classes[*class_index].0);
            for _ in 0..count {
                let absence_id = AbsenceId(b.uuid());
                let day = *b.pick(&days);
                let reporter = if b.rng.gen_bool(0.7) {
                    class_teachers[*class_index][b.rng.gen_range(0..SUBJECTS.len())].0
                } else {
                    cpe
                };
                let guardian = PersonInfo {
                    id: guardians[0].id,
                    role: Role::Guardian,
                };
                let hour = b.rng.gen_range(8..16);
                let mut state = absences::Absence::default();
                let mut events = Vec::new();
                if b.rng.gen_bool(0.1) {
                    // Declared in advance by a guardian, then confirmed by the roll call.
                    let declare = absences::DeclareAbsence {
                        absence_id,
                        student_id: *student_id,
                        start: at(day, hour, 0),
                        end: at(day, hour + 2, 0),
                        reason: (*b.pick(ABSENCE_REASONS)).to_string(),
                    };
                    let facts = absences::DeclareFacts {
                        student_class,
                        now: at(day, 7, 30),
                    };
                    let decision = absences::declare_absence(&state, &declare, &facts);
                    decided(
                        &mut state,
                        decision,
                        (guardian, at(day, 7, 30), None),
                        &mut events,
                    )?;
                    let roll_call = absences::ReportAbsence {
                        absence_id: AbsenceId(b.uuid()),
                        student_id: *student_id,
                        kind: AbsenceKind::Absence,
                        start: at(day, hour, 0),
                        end: at(day, hour + 1, 0),
                        minutes_late: None,
                    };
                    let facts = absences::ReportFacts {
                        student_class,
                        declared: vec![state.clone()],
                        now: at(day, hour, 5),
                    };
                    let decision =
                        absences::report_absence(&absences::Absence::default(), &roll_call, &facts)
                            .map(|outcome| outcome.events);
                    decided(
                        &mut state,
                        decision,
                        (reporter, at(day, hour, 5), None),
                        &mut events,
                    )?;
                } else {
                    let lateness = b.rng.gen_bool(0.35);
                    let report = absences::ReportAbsence {
                        absence_id,
                        student_id: *student_id,
                        kind: if lateness {
                            AbsenceKind::Lateness
                        } else {
                            AbsenceKind::Absence
                        },
                        start: at(day, hour, 0),
                        end: at(day, hour + 1, 0),
                        minutes_late: lateness.then(|| b.rng.gen_range(3..30)),
                    };
                    let facts = absences::ReportFacts {
                        student_class,
                        declared: Vec::new(),
                        now: at(day, hour, 5),
                    };
                    let decision = absences::report_absence(&state, &report, &facts)
                        .map(|outcome| outcome.events);
                    decided(
                        &mut state,
                        decision,
                        (reporter, at(day, hour, 5), None),
                        &mut events,
                    )?;
                    let next_day = day.checked_add_days(Days::new(1)).unwrap_or(day);
                    let review_day = day.checked_add_days(Days::new(2)).unwrap_or(day);
                    match b.rng.gen_range(0..10) {
                        // Unjustified.
                        0..=2 => {}
                        // Justified; reviewed (mostly accepted) in four cases out of six.
                        3..=8 => {
                            let reason = (*b.pick(ABSENCE_REASONS)).to_string();
                            let justify = absences::JustifyAbsence {
                                absence_id,
                                reason: reason.clone(),
                            };
                            let decision = absences::justify_absence(&state, &justify);
                            let when = at(next_day, 19, 0);
                            decided(
                                &mut state,
                                decision,
                                (guardian, when, Some(&reason)),
                                &mut events,
                            )?;
                            let motive = school_day::guardian_motive(&mut b, establishment);
                            let given = DomainEvent::AbsenceMotiveGiven(AbsenceMotiveGiven {
                                absence_id,
                                student_id: *student_id,
                                motive_id: motive,
                            });
                            decided(
                                &mut state,
                                Ok(vec![given]),
                                (guardian, when, None),
                                &mut events,
                            )?;
                            if b.rng.gen_range(0..6) < 4 {
                                let accept = b.rng.gen_bool(0.85);
                                let review = absences::ReviewJustification {
                                    absence_id,
                                    accept,
                                    comment: (!accept).then(|| "Motif non recevable".to_string()),
                                };
                                let decision = absences::review_justification(&state, &review);
                                decided(
                                    &mut state,
                                    decision,
                                    (cpe, at(review_day, 10, 0), None),
                                    &mut events,
                                )?;
                            }
                        }
                        // Entered in error.
                        _ => {
                            let reason = "Saisie erronée";
                            let cancel = absences::CancelAbsence {
                                absence_id,
                                reason: reason.into(),
                            };
                            let decision = absences::cancel_absence(&state, &cancel);
                            let when = at(day, hour, 20);
                            decided(
                                &mut state,
                                decision,
                                (reporter, when, Some(reason)),
                                &mut events,
                            )?;
                        }
                    }
                }
                b.stream(events);
            }
        }

        let timetable = school_day::timetable(
            &mut b,
            &school_day::Input {
                establishment,
                classes: &classes,
                class_teachers: &class_teachers,
                class_students: (0..classes.len())
                    .map(|ci| students.iter().filter(|s| s.2 == ci).map(|s| s.1).collect())
                    .collect(),
                days: &days,
                cpe,
                now,
            },
        );

        // Homework: about one entry a week per class and subject.
        for (ci, (class_id, _)) in classes.iter().enumerate() {
            for (teacher, subject) in class_teachers[ci].clone() {
                let titles = SUBJECTS
                    .iter()
                    .find(|(s, _, _)| *s == subject)
                    .map(|s| s.2)
                    .unwrap_or(&[]);
                if titles.is_empty() {
                    continue;
                }
                for week in (0..days.len()).step_by(10) {
                    let assigned_on = days[week];
                    let due = days[(week + b.rng.gen_range(2..7)).min(days.len() - 1)];
                    let homework_id = HomeworkId(b.uuid());
                    let title = (*b.pick(titles)).to_string();
                    let mut events = vec![(
                        DomainEvent::HomeworkAssigned(HomeworkAssigned {
                            homework_id,
                            class_id: *class_id,
                            teacher_id: teacher.id,
                            subject: subject.into(),
                            title: title.clone(),
                            description: format!("{title} pour le {}.", due.format("%d/%m")),
                            due,
                            assigned_on,
                        }),
                        Some(teacher),
                        at(assigned_on, 17, 0),
                        None,
                    )];
                    events.push(school_day::homework_details(
                        &mut b,
                        &timetable,
                        (homework_id, *class_id, ci),
                        subject,
                        assigned_on,
                        teacher,
                    ));
                    if b.rng.gen_range(0..20) == 0 {
                        let later = days[(week + 8).min(days.len() - 1)];
                        events.push((
                            DomainEvent::HomeworkAmended(HomeworkAmended {
                                homework_id,
                                class_id: *class_id,
                                title: title.clone(),
                                description: format!("{title} — échéance repoussée."),
                                due: later,
                                reason: Some("Sortie scolaire".into()),
                            }),
                            Some(teacher),
                            at(assigned_on, 18, 0),
                            Some("Sortie scolaire".into()),
                        ));
                    }
                    b.stream(events);
                }
            }
        }

        // Messages: a teacher writes to a student's guardians; some read it.
        for _ in 0..300 {
            let si = b.rng.gen_range(0..students.len());
            let (_, _, class_index, student_name) = &students[si];
            let teacher = class_teachers[*class_index][b.rng.gen_range(0..SUBJECTS.len())].0;
            let guardians = &student_guardians[si];
            let thread_id = ThreadId(b.uuid());
            let message_id = MessageId(b.uuid());
            let day = *b.pick(&days);
            let mut events = vec![(
                DomainEvent::MessageSent(MessageSent {
                    message_id,
                    thread_id,
                    from: teacher.id,
                    to: guardians.iter().map(|g| g.id).collect(),
                    subject: format!("Suivi de {student_name}"),
                    body: "Bonjour, je souhaiterais faire le point sur le travail de votre enfant. Cordialement.".into(),
                }),
                Some(teacher),
                at(day, 17, 30),
                None,
            )];
            for g in guardians {
                if b.rng.gen_bool(0.7) {
                    let reader = PersonInfo {
                        id: g.id,
                        role: Role::Guardian,
                    };
                    events.push((
                        DomainEvent::MessageRead(MessageRead {
                            message_id,
                            thread_id,
                            reader: g.id,
                        }),
                        Some(reader),
                        at(day, 20, 0),
                        None,
                    ));
                }
            }
            b.stream(events);
        }

        discipline::generate(
            &mut b,
            &discipline::School {
                head,
                cpe,
                establishment,
                students: &students,
                guardians: &student_guardians,
                class_teachers: &class_teachers,
                days: &days,
                accounts: &accounts,
            },
        )?;
        evaluation::seed(&mut b, establishment, &class_teachers, &students)?;
        // communication (issue 16)
        let mut by_class: Vec<(PersonInfo, Vec<PersonInfo>)> = class_teachers
            .iter()
            .filter_map(|t| t.first().map(|(teacher, _)| (*teacher, Vec::new())))
            .collect();
        for ((_, _, class_index, _), guardians) in students.iter().zip(&student_guardians) {
            if let Some((_, list)) = by_class.get_mut(*class_index) {
                list.extend(guardians.iter().copied());
            }
        }
        communication::seed(&mut b, &by_class, *days.last().context("a school day")?);

        Ok(Plan {
            establishment,
            events: b.events,
            requests: b.requests,
            accounts,
        })
    }
}

/// Appends a decision's events to a stream being written, folding them into
/// the aggregate's state so that the next decision sees them.
fn decided<A: Aggregate>(
    state: &mut A,
    decision: Result<Vec<DomainEvent>, DomainError>,
    (actor, at, reason): (PersonInfo, DateTime<Utc>, Option<&str>),
    events: &mut Vec<Entry>,
) -> anyhow::Result<()> {
    let decided = decision.map_err(|e| anyhow::anyhow!("the demo made an invalid command: {e}"))?;
    for event in decided {
        state.apply(&event);
        events.push((event, Some(actor), at, reason.map(str::to_string)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_plan_is_deterministic_and_complete() {
        let now = at(NaiveDate::from_ymd_opt(2026, 11, 26).expect("a day"), 11, 0);
        let a = Plan::generate(7, now).expect("plan");
        let b = Plan::generate(7, now).expect("plan");
        assert_eq!(a.requests, b.requests, "same seed, same collège");
        let c = Plan::generate(8, now).expect("plan");
        assert_ne!(a.requests, c.requests);
        assert!(
            a.events > 20_000,
            "tens of thousands of events: {}",
            a.events
        );

        let mut by_type: HashMap<String, usize> = HashMap::new();
        let mut streams = BTreeSet::new();
        for r in &a.requests {
            assert!(
                streams.insert(r.stream_id.clone()),
                "each stream is written once: {}",
                r.stream_id
            );
            assert_eq!(r.expected, ExpectedVersion::NoStream);
            for e in &r.events {
                *by_type.entry(e.event_type.clone()).or_default() += 1;
                let decoded =
                    DomainEvent::decode(&e.event_type, e.schema_version, &e.data).expect("decodes");
                assert_eq!(decoded.stream().as_str(), r.stream_id);
            }
        }
        // Every stream folds into its aggregate at the version the store will give it.
        for r in &a.requests {
            let events: Vec<DomainEvent> = r
                .events
                .iter()
                .map(|e| {
                    DomainEvent::decode(&e.event_type, e.schema_version, &e.data).expect("decodes")
                })
                .collect();
            let category = r.stream_id.split('-').next().expect("a category");
            let version = match category {
                // Created, then its motives and holidays (issue 13).
                "establishment" => registre_domain::school_day::Calendar::fold(&events).version(),
                "course" => registre_domain::school_day::Course::fold(&events).version(),
                "class" => roster::Class::fold(&events).version(),
                "person" => roster::Person::fold(&events).version(),
                "student" => roster::Student::fold(&events).version(),
                "assessment" => grades::Assessment::fold(&events).version(),
                "absence" => absences::Absence::fold(&events).version(),
                "homework" => homework::Homework::fold(&events).version(),
                "thread" => messages::Thread::fold(&events).version(),
                "incident" => registre_domain::discipline::Incident::fold(&events).version(),
                "punishment" => registre_domain::discipline::Punishment::fold(&events).version(),
                "sanction" => registre_domain::discipline::Sanction::fold(&events).version(),
                "periods" => registre_domain::evaluation::Periods::fold(&events).version(),
                "reportcard" => {
                    registre_domain::evaluation::ReportCardSheet::fold(&events).version()
                }
                // communication (issue 16)
                "notifications" => {
                    registre_domain::communication::Notifications::fold(&events).version()
                }
                other => panic!("unexpected stream category {other}"),
            };
            assert_eq!(version, events.len() as u64, "{}", r.stream_id);
        }
        assert_eq!(by_type["ClassCreated"], 16);
        assert_eq!(by_type["StudentEnrolled"], 400);
        assert_eq!(by_type["TeacherAssigned"], 160);
        for t in [
            "GradeCorrected",
            "AbsenceJustified",
            "JustificationReviewed",
            "AbsenceDeclared",
            "MessageRead",
            "HomeworkAssigned",
            "IncidentReported",
            "PunishmentGiven",
            "CoursePlanned",
            "RollCallTaken",
            "LessonContentRecorded",
            "AbsenceReasonDefined",
            "HolidaysSet",
            "HomeworkDetailed",
            "AbsenceMotiveGiven",
            "PeriodsDefined",
            "PeriodClosed",
            "AppreciationWritten",
        ] {
            assert!(by_type.get(t).copied().unwrap_or(0) > 0, "{t} present");
        }
        assert_eq!(by_type["SanctionImposed"], 2, "two sanctions");
        // The demo guardian sees a punishment of one of their children.
        let guardian = PersonId::for_external_id(&a.accounts[0].subject);
        let children: BTreeSet<String> = a
            .requests
            .iter()
            .flat_map(|r| &r.events)
            .filter(|e| e.event_type == "GuardianLinked")
            .filter(|e| e.data["guardian_id"] == serde_json::json!(guardian.to_string()))
            .filter_map(|e| e.data["student_id"].as_str().map(str::to_owned))
            .collect();
        assert!(
            a.requests
                .iter()
                .flat_map(|r| &r.events)
                .filter(|e| e.event_type == "PunishmentGiven")
                .any(|e| e.data["student_id"]
                    .as_str()
                    .is_some_and(|s| children.contains(s))),
            "the demo family has a punishment"
        );
        let roles: Vec<&str> = a.accounts.iter().map(|a| a.role).collect();
        assert_eq!(
            roles,
            [
                "GUARDIAN",
                "STUDENT",
                "TEACHER",
                "EDUCATION_STAFF",
                "HEAD",
                "ADMIN",
                "AUDITOR"
            ]
        );
    }

    #[test]
    fn the_demo_guardian_has_two_children() {
        let plan = Plan::generate(2026, Utc::now()).expect("plan");
        let guardian = &plan.accounts[0];
        let guardian_id = PersonId::for_external_id(&guardian.subject);
        let children = plan
            .requests
            .iter()
            .flat_map(|r| &r.events)
            .filter(|e| e.event_type == "GuardianLinked")
            .filter(|e| e.data["guardian_id"] == serde_json::json!(guardian_id.to_string()))
            .count();
        assert_eq!(children, 2);
    }

    // pages (issue 18)
    #[test]
    fn the_page_url_opens_on_this_machine_with_the_token_in_the_fragment() {
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("an address");
        assert_eq!(page_url(any, "abc"), "http://127.0.0.1:8080/#token=abc");
        let v6: SocketAddr = "[::1]:9000".parse().expect("an address");
        assert_eq!(page_url(v6, "t"), "http://[::1]:9000/#token=t");
    }
}
