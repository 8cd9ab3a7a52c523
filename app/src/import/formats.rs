//! The SIECLE BEE exports and the STS-Web export, as far as Registre reads
//! them (docs/interop.md lists the elements and where they are described).

use super::read::Element;
use super::ImportError;
use chrono::NaiveDate;

/// A student of `ElevesSansAdresses.xml` (`BEE_ELEVES`).
#[derive(Clone, Debug)]
pub struct SiecleStudent {
    /// `ELEVE_ID`: the key `ResponsablesAvecAdresses.xml` links guardians by.
    pub eleve_id: String,
    /// `ID_NATIONAL` (the INE), when SIECLE has one.
    pub ine: Option<String>,
    pub last_name: String,
    pub first_name: String,
    /// The `CODE_STRUCTURE` of its `TYPE_STRUCTURE` D (division) in `STRUCTURES_ELEVE`.
    pub division: Option<String>,
    /// `DATE_SORTIE`: the student left on that day.
    pub left_on: Option<NaiveDate>,
    pub line: usize,
}

/// A person of `ResponsablesAvecAdresses.xml` (`BEE_RESPONSABLES`).
#[derive(Clone, Debug)]
pub struct SiecleGuardian {
    pub personne_id: String,
    pub last_name: String,
    pub first_name: String,
    pub line: usize,
}

/// A `RESPONSABLE_ELEVE`: who is responsible for which student.
#[derive(Clone, Debug)]
pub struct SiecleLink {
    pub eleve_id: String,
    pub personne_id: String,
    /// `RESP_LEGAL` 1 or 2: a legal representative; 0 is a contact person only.
    pub legal: bool,
    pub line: usize,
}

/// A teacher of `sts_emp_<UAI>_<year>.xml` (`STS_EDT`).
#[derive(Clone, Debug)]
pub struct StsTeacher {
    pub id: String,
    pub last_name: String,
    pub first_name: String,
    pub line: usize,
}

/// A `SERVICE` of a `DIVISION`: a teacher teaching a subject to a class.
#[derive(Clone, Debug)]
pub struct StsService {
    pub division: String,
    pub subject: String,
    /// The `CODE_MATIERE`: the national subject code (six digits), which
    /// LSU names a discipline by (interop, issue 17).
    pub subject_code: String,
    pub teacher_id: String,
    pub line: usize,
}

/// One parsed export file.
#[derive(Clone, Debug)]
pub enum Export {
    Students {
        uai: (String, usize),
        students: Vec<SiecleStudent>,
    },
    Guardians {
        uai: (String, usize),
        guardians: Vec<SiecleGuardian>,
        links: Vec<SiecleLink>,
    },
    Sts {
        uai: (String, usize),
        teachers: Vec<StsTeacher>,
        services: Vec<StsService>,
    },
}

impl Export {
    pub fn uai(&self) -> &(String, usize) {
        match self {
            Export::Students { uai, .. }
            | Export::Guardians { uai, .. }
            | Export::Sts { uai, .. } => uai,
        }
    }
}

/// Reads a parsed document by its root element.
pub fn read(file: &str, root: &Element) -> Result<Export, ImportError> {
    let missing = |e: &Element, what: &str| ImportError {
        file: file.to_owned(),
        line: Some(e.line),
        element: Some(e.name.clone()),
        message: format!("has no {what}"),
    };
    let uai = |root: &Element| -> Result<(String, usize), ImportError> {
        let parameters = root
            .child("PARAMETRES")
            .ok_or_else(|| missing(root, "PARAMETRES"))?;
        let uaj = parameters
            .child("UAJ")
            .ok_or_else(|| missing(parameters, "UAJ (the establishment's UAI)"))?;
        // SIECLE writes the UAI as the element's text, STS-Web as its CODE.
        let code = uaj
            .attribute("CODE")
            .filter(|c| !c.is_empty())
            .unwrap_or(uaj.text.as_str());
        if code.is_empty() {
            return Err(missing(uaj, "UAI"));
        }
        Ok((code.to_uppercase(), uaj.line))
    };
    let data = root.child("DONNEES");
    match root.name.as_str() {
        "BEE_ELEVES" => {
            let uai = uai(root)?;
            let data = data.ok_or_else(|| missing(root, "DONNEES"))?;
            let mut divisions = std::collections::HashMap::new();
            for s in data
                .path(&["STRUCTURES"])
                .into_iter()
                .flat_map(|s| s.children("STRUCTURES_ELEVE"))
            {
                let id = s
                    .attribute("ELEVE_ID")
                    .ok_or_else(|| missing(s, "ELEVE_ID attribute"))?;
                let division = s
                    .children("STRUCTURE")
                    .find(|st| st.child_text("TYPE_STRUCTURE") == Some("D"))
                    .and_then(|st| st.child_text("CODE_STRUCTURE"));
                if let Some(d) = division {
                    divisions.insert(id.to_owned(), d.to_owned());
                }
            }
            let mut students = Vec::new();
            for e in data
                .path(&["ELEVES"])
                .into_iter()
                .flat_map(|s| s.children("ELEVE"))
            {
                let eleve_id = e
                    .attribute("ELEVE_ID")
                    .ok_or_else(|| missing(e, "ELEVE_ID attribute"))?;
                // NOM_DE_FAMILLE since the 2019 format, NOM before.
                let last_name = e
                    .child_text("NOM_DE_FAMILLE")
                    .or_else(|| e.child_text("NOM"))
                    .ok_or_else(|| missing(e, "NOM_DE_FAMILLE"))?;
                let first_name = e.child_text("PRENOM").ok_or_else(|| missing(e, "PRENOM"))?;
                let left_on = match e.child("DATE_SORTIE").filter(|d| !d.text.is_empty()) {
                    None => None,
                    Some(d) => {
                        Some(NaiveDate::parse_from_str(&d.text, "%d/%m/%Y").map_err(|_| {
                            ImportError {
                                file: file.to_owned(),
                                line: Some(d.line),
                                element: Some(d.name.clone()),
                                message: format!("{:?} is not a date (DD/MM/YYYY)", d.text),
                            }
                        })?)
                    }
                };
                students.push(SiecleStudent {
                    eleve_id: eleve_id.to_owned(),
                    ine: e.child_text("ID_NATIONAL").map(str::to_owned),
                    last_name: last_name.to_owned(),
                    first_name: first_name.to_owned(),
                    division: divisions.get(eleve_id).cloned(),
                    left_on,
                    line: e.line,
                });
            }
            Ok(Export::Students { uai, students })
        }
        "BEE_RESPONSABLES" => {
            let uai = uai(root)?;
            let data = data.ok_or_else(|| missing(root, "DONNEES"))?;
            let mut guardians = Vec::new();
            for p in data
                .path(&["PERSONNES"])
                .into_iter()
                .flat_map(|s| s.children("PERSONNE"))
            {
                let id = p
                    .attribute("PERSONNE_ID")
                    .ok_or_else(|| missing(p, "PERSONNE_ID attribute"))?;
                guardians.push(SiecleGuardian {
                    personne_id: id.to_owned(),
                    last_name: p
                        .child_text("NOM_DE_FAMILLE")
                        .or_else(|| p.child_text("NOM"))
                        .ok_or_else(|| missing(p, "NOM_DE_FAMILLE"))?
                        .to_owned(),
                    first_name: p.child_text("PRENOM").unwrap_or_default().to_owned(),
                    line: p.line,
                });
            }
            let mut links = Vec::new();
            for r in data
                .path(&["RESPONSABLES"])
                .into_iter()
                .flat_map(|s| s.children("RESPONSABLE_ELEVE"))
            {
                links.push(SiecleLink {
                    eleve_id: r
                        .child_text("ELEVE_ID")
                        .ok_or_else(|| missing(r, "ELEVE_ID"))?
                        .to_owned(),
                    personne_id: r
                        .child_text("PERSONNE_ID")
                        .ok_or_else(|| missing(r, "PERSONNE_ID"))?
                        .to_owned(),
                    legal: matches!(r.child_text("RESP_LEGAL"), Some("1" | "2")),
                    line: r.line,
                });
            }
            Ok(Export::Guardians {
                uai,
                guardians,
                links,
            })
        }
        "STS_EDT" => {
            let uai = uai(root)?;
            let data = data.ok_or_else(|| missing(root, "DONNEES"))?;
            let mut subjects = std::collections::HashMap::new();
            for m in data
                .path(&["NOMENCLATURES", "MATIERES"])
                .into_iter()
                .flat_map(|s| s.children("MATIERE"))
            {
                let code = m
                    .attribute("CODE")
                    .ok_or_else(|| missing(m, "CODE attribute"))?;
                let label = m
                    .child_text("LIBELLE_EDITION")
                    .or_else(|| m.child_text("LIBELLE_LONG"))
                    .or_else(|| m.child_text("CODE_GESTION"))
                    .ok_or_else(|| missing(m, "LIBELLE_EDITION or LIBELLE_LONG"))?;
                subjects.insert(code.to_owned(), label.to_owned());
            }
            let mut services = Vec::new();
            for d in data
                .path(&["STRUCTURE", "DIVISIONS"])
                .into_iter()
                .flat_map(|s| s.children("DIVISION"))
            {
                let division = d
                    .attribute("CODE")
                    .ok_or_else(|| missing(d, "CODE attribute"))?;
                for s in d
                    .path(&["SERVICES"])
                    .into_iter()
                    .flat_map(|s| s.children("SERVICE"))
                {
                    let code = s
                        .attribute("CODE_MATIERE")
                        .ok_or_else(|| missing(s, "CODE_MATIERE attribute"))?;
                    let subject = subjects.get(code).ok_or_else(|| ImportError {
                        file: file.to_owned(),
                        line: Some(s.line),
                        element: Some(s.name.clone()),
                        message: format!("CODE_MATIERE {code} is not in NOMENCLATURES/MATIERES"),
                    })?;
                    for t in s
                        .path(&["ENSEIGNANTS"])
                        .into_iter()
                        .flat_map(|e| e.children("ENSEIGNANT"))
                    {
                        services.push(StsService {
                            division: division.to_owned(),
                            subject: subject.clone(),
                            subject_code: code.to_owned(),
                            teacher_id: t
                                .attribute("ID")
                                .ok_or_else(|| missing(t, "ID attribute"))?
                                .to_owned(),
                            line: t.line,
                        });
                    }
                }
            }
            let mut teachers = Vec::new();
            for i in data
                .path(&["INDIVIDUS"])
                .into_iter()
                .flat_map(|s| s.children("INDIVIDU"))
            {
                // Teachers (FONCTION ENS), and whoever else holds a service
                // (a documentalist teaching a class, say).
                let id = i.attribute("ID").unwrap_or_default();
                if i.child_text("FONCTION") != Some("ENS")
                    && !services.iter().any(|s: &StsService| s.teacher_id == id)
                {
                    continue;
                }
                teachers.push(StsTeacher {
                    id: i
                        .attribute("ID")
                        .ok_or_else(|| missing(i, "ID attribute"))?
                        .to_owned(),
                    last_name: i
                        .child_text("NOM_USAGE")
                        .or_else(|| i.child_text("NOM_PATRONYMIQUE"))
                        .ok_or_else(|| missing(i, "NOM_USAGE"))?
                        .to_owned(),
                    first_name: i.child_text("PRENOM").unwrap_or_default().to_owned(),
                    line: i.line,
                });
            }
            Ok(Export::Sts {
                uai,
                teachers,
                services,
            })
        }
        other => Err(ImportError {
            file: file.to_owned(),
            line: Some(root.line),
            element: Some(other.to_owned()),
            message: "not a SIECLE (BEE_ELEVES, BEE_RESPONSABLES) or STS-Web (STS_EDT) export"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::read::parse;

    fn export(xml: &str) -> Result<Export, ImportError> {
        read("f.xml", &parse("f.xml", xml, &mut |_| {})?)
    }

    #[test]
    fn older_students_exports_and_groups_are_read_as_they_mean() {
        let xml = r#"<BEE_ELEVES><PARAMETRES><UAJ>0691234x</UAJ></PARAMETRES><DONNEES>
            <ELEVES><ELEVE ELEVE_ID="7"><NOM>MARTIN</NOM><PRENOM>Léa</PRENOM><DATE_SORTIE/></ELEVE></ELEVES>
            <STRUCTURES><STRUCTURES_ELEVE ELEVE_ID="7">
              <STRUCTURE><CODE_STRUCTURE>LATIN</CODE_STRUCTURE><TYPE_STRUCTURE>G</TYPE_STRUCTURE></STRUCTURE>
              <STRUCTURE><CODE_STRUCTURE>3A</CODE_STRUCTURE><TYPE_STRUCTURE>D</TYPE_STRUCTURE></STRUCTURE>
            </STRUCTURES_ELEVE></STRUCTURES></DONNEES></BEE_ELEVES>"#;
        let Export::Students { uai, students } = export(xml).expect("reads") else {
            panic!("a students export")
        };
        assert_eq!(uai.0, "0691234X");
        let s = &students[0];
        assert_eq!(
            (
                s.last_name.as_str(),
                s.ine.as_deref(),
                s.division.as_deref(),
                s.left_on
            ),
            ("MARTIN", None, Some("3A"), None)
        );
    }

    #[test]
    fn a_bad_date_and_an_unknown_subject_name_their_line() {
        let xml = "<BEE_ELEVES><PARAMETRES><UAJ>0691234X</UAJ></PARAMETRES><DONNEES><ELEVES>\n<ELEVE ELEVE_ID=\"7\"><NOM_DE_FAMILLE>A</NOM_DE_FAMILLE><PRENOM>B</PRENOM>\n<DATE_SORTIE>31/02/2026</DATE_SORTIE></ELEVE></ELEVES></DONNEES></BEE_ELEVES>";
        let err = export(xml).expect_err("no such day");
        assert_eq!(
            (err.line, err.element.as_deref()),
            (Some(3), Some("DATE_SORTIE"))
        );
        let sts = "<STS_EDT><PARAMETRES><UAJ CODE=\"0691234X\"/></PARAMETRES><DONNEES><STRUCTURE><DIVISIONS>\n<DIVISION CODE=\"3A\"><SERVICES>\n<SERVICE CODE_MATIERE=\"999\"/></SERVICES></DIVISION></DIVISIONS></STRUCTURE></DONNEES></STS_EDT>";
        let err = export(sts).expect_err("unknown subject");
        assert_eq!(
            (err.line, err.element.as_deref()),
            (Some(3), Some("SERVICE"))
        );
        let err = export("<ROOT/>").expect_err("not an export");
        assert!(err.message.contains("not a SIECLE"), "{err}");
        // Who holds a service is a teacher, whatever their FONCTION.
        let sts = r#"<STS_EDT><PARAMETRES><UAJ CODE="0691234X"/></PARAMETRES><DONNEES>
            <NOMENCLATURES><MATIERES><MATIERE CODE="1"><LIBELLE_LONG>DOC</LIBELLE_LONG></MATIERE></MATIERES></NOMENCLATURES>
            <INDIVIDUS><INDIVIDU ID="5"><NOM_USAGE>A</NOM_USAGE><FONCTION>DOC</FONCTION></INDIVIDU>
              <INDIVIDU ID="6"><NOM_USAGE>B</NOM_USAGE><FONCTION>DIR</FONCTION></INDIVIDU></INDIVIDUS>
            <STRUCTURE><DIVISIONS><DIVISION CODE="3A"><SERVICES><SERVICE CODE_MATIERE="1">
              <ENSEIGNANTS><ENSEIGNANT ID="5"/></ENSEIGNANTS></SERVICE></SERVICES></DIVISION></DIVISIONS></STRUCTURE>
            </DONNEES></STS_EDT>"#;
        let Export::Sts {
            teachers, services, ..
        } = export(sts).expect("reads")
        else {
            panic!("an STS export")
        };
        assert_eq!(
            teachers.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["5"]
        );
        assert_eq!(
            (services[0].subject.as_str(), services[0].division.as_str()),
            ("DOC", "3A")
        );
        let err = export("<ROOT/>").expect_err("not an export");
        assert!(err.message.contains("not a SIECLE"), "{err}");
    }
}
