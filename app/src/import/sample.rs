//! Generated SIECLE and STS-Web exports in the real structure and encoding,
//! for the tests and the import benchmark: no real person's data is shipped.

use chrono::NaiveDate;
use std::io::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub struct Student {
    pub eleve_id: String,
    pub ine: String,
    pub last_name: String,
    pub first_name: String,
    /// `None`: an export error the tests make on purpose (a student without a class).
    pub division: Option<String>,
    pub left_on: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Guardian {
    pub personne_id: String,
    pub last_name: String,
    pub first_name: String,
    /// (ELEVE_ID, RESP_LEGAL: 1 or 2 legal representative, 0 contact).
    pub children: Vec<(String, u8)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Teacher {
    pub id: String,
    pub last_name: String,
    pub first_name: String,
    /// (division code, subject code of `SUBJECTS`).
    pub services: Vec<(String, String)>,
}

/// The subjects of the STS nomenclature the generator uses (code, edition label).
pub const SUBJECTS: [(&str, &str); 6] = [
    ("020700", "Français"),
    ("061300", "Mathématiques"),
    ("030201", "Anglais LV1"),
    ("040600", "Histoire-géographie"),
    ("063000", "Physique-chimie"),
    ("100100", "Éducation physique et sportive"),
];

const FIRST: [&str; 12] = [
    "Éloïse",
    "Noël",
    "Chloé",
    "Gaëlle",
    "Joël",
    "Anaïs",
    "Hélène",
    "Jérôme",
    "Zoé",
    "Loïc",
    "Maëlys",
    "François",
];
const LAST: [&str; 12] = [
    "Lefèvre",
    "Bénard",
    "Cœurdacier",
    "Dupré",
    "Garçon",
    "Mélançon",
    "Rivière",
    "Lemaître",
    "Pérez",
    "Besançon",
    "Écuyer",
    "Martin",
];

/// One establishment's exports.
#[derive(Clone, Debug, PartialEq)]
pub struct School {
    pub uai: String,
    pub year: i32,
    pub students: Vec<Student>,
    pub guardians: Vec<Guardian>,
    pub teachers: Vec<Teacher>,
}

impl School {
    /// `students` students in divisions of 30 ("2NDE1", ...), two legal
    /// representatives each and, every fifth, a contact person; a teacher per
    /// subject and four divisions.
    pub fn generated(uai: &str, year: i32, students: usize) -> School {
        let divisions = students.div_ceil(30).max(1);
        let division = |i: usize| format!("2NDE{}", i / 30 + 1);
        let mut school = School {
            uai: uai.to_owned(),
            year,
            students: Vec::new(),
            guardians: Vec::new(),
            teachers: Vec::new(),
        };
        for i in 0..students {
            let eleve_id = format!("{}", 100_000 + i);
            let last = LAST[(i * 7) % LAST.len()];
            school.students.push(Student {
                eleve_id: eleve_id.clone(),
                ine: format!("{:09}{}", 70_000_000 + i, ["AB", "CD", "EF"][i % 3]),
                last_name: last.to_uppercase(),
                first_name: FIRST[i % FIRST.len()].to_owned(),
                division: Some(division(i)),
                left_on: None,
            });
            for (k, legal) in [(0, 1), (1, 2)] {
                school.guardians.push(Guardian {
                    personne_id: format!("{}", 500_000 + 3 * i + k),
                    last_name: last.to_uppercase(),
                    first_name: FIRST[(i + 5 + k) % FIRST.len()].to_owned(),
                    children: vec![(eleve_id.clone(), legal)],
                });
            }
            if i % 5 == 0 {
                school.guardians.push(Guardian {
                    personne_id: format!("{}", 500_000 + 3 * i + 2),
                    last_name: "VOISIN".into(),
                    first_name: "Thérèse".into(),
                    children: vec![(eleve_id, 0)],
                });
            }
        }
        for (s, (code, _)) in SUBJECTS.iter().enumerate() {
            for t in 0..divisions.div_ceil(4) {
                school.teachers.push(Teacher {
                    id: format!("{}", 9_000 + s * 100 + t),
                    last_name: LAST[(s + t) % LAST.len()].to_uppercase(),
                    first_name: FIRST[(s * 3 + t) % FIRST.len()].to_owned(),
                    services: (t * 4..(t * 4 + 4).min(divisions))
                        .map(|d| (format!("2NDE{}", d + 1), (*code).to_owned()))
                        .collect(),
                });
            }
        }
        school
    }

    /// `ElevesSansAdresses.xml` in ISO-8859-15.
    pub fn eleves_xml(&self) -> Vec<u8> {
        let mut x = self.header("BEE_ELEVES", "3.1");
        x.push_str("  <DONNEES>\n    <ELEVES>\n");
        for s in &self.students {
            x.push_str(&format!(
                "      <ELEVE ELEVE_ID=\"{}\" ELENOET=\"{}\">\n        <ID_NATIONAL>{}</ID_NATIONAL>\n        <NOM_DE_FAMILLE>{}</NOM_DE_FAMILLE>\n        <PRENOM>{}</PRENOM>\n        <DATE_NAISS>14/03/2010</DATE_NAISS>\n        <CODE_SEXE>2</CODE_SEXE>\n        <DATE_ENTREE>01/09/{}</DATE_ENTREE>\n",
                s.eleve_id, s.eleve_id, s.ine, esc(&s.last_name), esc(&s.first_name), self.year
            ));
            if let Some(on) = s.left_on {
                x.push_str(&format!(
                    "        <DATE_SORTIE>{}</DATE_SORTIE>\n",
                    on.format("%d/%m/%Y")
                ));
            }
            x.push_str("        <CODE_MEF>20010018110</CODE_MEF>\n      </ELEVE>\n");
        }
        x.push_str("    </ELEVES>\n    <STRUCTURES>\n");
        for s in &self.students {
            x.push_str(&format!(
                "      <STRUCTURES_ELEVE ELEVE_ID=\"{}\" ELENOET=\"{}\">\n",
                s.eleve_id, s.eleve_id
            ));
            if let Some(d) = &s.division {
                x.push_str(&format!("        <STRUCTURE>\n          <CODE_STRUCTURE>{}</CODE_STRUCTURE>\n          <TYPE_STRUCTURE>D</TYPE_STRUCTURE>\n        </STRUCTURE>\n", esc(d)));
            }
            x.push_str("        <STRUCTURE>\n          <CODE_STRUCTURE>G_LATIN</CODE_STRUCTURE>\n          <TYPE_STRUCTURE>G</TYPE_STRUCTURE>\n        </STRUCTURE>\n      </STRUCTURES_ELEVE>\n");
        }
        x.push_str("    </STRUCTURES>\n  </DONNEES>\n</BEE_ELEVES>\n");
        latin9(&x)
    }

    /// `ResponsablesAvecAdresses.xml` in ISO-8859-15.
    pub fn responsables_xml(&self) -> Vec<u8> {
        let mut x = self.header("BEE_RESPONSABLES", "1.8");
        x.push_str("  <DONNEES>\n    <PERSONNES>\n");
        for g in &self.guardians {
            x.push_str(&format!(
                "      <PERSONNE PERSONNE_ID=\"{}\">\n        <LC_CIVILITE>MME</LC_CIVILITE>\n        <NOM_DE_FAMILLE>{}</NOM_DE_FAMILLE>\n        <PRENOM>{}</PRENOM>\n        <ADRESSE_ID>{}</ADRESSE_ID>\n      </PERSONNE>\n",
                g.personne_id, esc(&g.last_name), esc(&g.first_name), g.personne_id
            ));
        }
        x.push_str("    </PERSONNES>\n    <RESPONSABLES>\n");
        for g in &self.guardians {
            for (eleve, legal) in &g.children {
                x.push_str(&format!(
                    "      <RESPONSABLE_ELEVE>\n        <ELEVE_ID>{eleve}</ELEVE_ID>\n        <PERSONNE_ID>{}</PERSONNE_ID>\n        <RESP_LEGAL>{legal}</RESP_LEGAL>\n        <CODE_PARENTE>{}</CODE_PARENTE>\n        <RESP_FINANCIER>{}</RESP_FINANCIER>\n        <PERS_CONTACT>1</PERS_CONTACT>\n      </RESPONSABLE_ELEVE>\n",
                    g.personne_id,
                    if *legal == 0 { "90" } else { "10" },
                    u8::from(*legal == 1)
                ));
            }
        }
        x.push_str("    </RESPONSABLES>\n    <ADRESSES/>\n  </DONNEES>\n</BEE_RESPONSABLES>\n");
        latin9(&x)
    }

    /// `sts_emp_<UAI>_<year>.xml` in ISO-8859-15.
    pub fn sts_xml(&self) -> Vec<u8> {
        let mut x = format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<STS_EDT>\n  <PARAMETRES>\n    <UAJ CODE=\"{}\">\n      <ACADEMIE><CODE>01</CODE></ACADEMIE>\n    </UAJ>\n    <ANNEE_SCOLAIRE ANNEE=\"{}\"/>\n  </PARAMETRES>\n  <DONNEES>\n    <NOMENCLATURES>\n      <MATIERES>\n",
            self.uai, self.year
        );
        for (code, label) in SUBJECTS {
            x.push_str(&format!(
                "        <MATIERE CODE=\"{code}\">\n          <CODE_GESTION>{}</CODE_GESTION>\n          <LIBELLE_COURT>{}</LIBELLE_COURT>\n          <LIBELLE_LONG>{}</LIBELLE_LONG>\n          <LIBELLE_EDITION>{}</LIBELLE_EDITION>\n        </MATIERE>\n",
                &code[..4], esc(&label.to_uppercase()), esc(&label.to_uppercase()), esc(label)
            ));
        }
        x.push_str("      </MATIERES>\n    </NOMENCLATURES>\n    <INDIVIDUS>\n");
        for t in &self.teachers {
            x.push_str(&format!(
                "      <INDIVIDU ID=\"{}\" TYPE=\"epp\">\n        <SEXE>2</SEXE>\n        <CIVILITE>3</CIVILITE>\n        <NOM_USAGE>{}</NOM_USAGE>\n        <NOM_PATRONYMIQUE>{}</NOM_PATRONYMIQUE>\n        <PRENOM>{}</PRENOM>\n        <FONCTION>ENS</FONCTION>\n      </INDIVIDU>\n",
                t.id, esc(&t.last_name), esc(&t.last_name), esc(&t.first_name)
            ));
        }
        x.push_str("      <INDIVIDU ID=\"1\" TYPE=\"epp\">\n        <NOM_USAGE>PROVISEUR</NOM_USAGE>\n        <PRENOM>Agnès</PRENOM>\n        <FONCTION>DIR</FONCTION>\n      </INDIVIDU>\n");
        x.push_str("    </INDIVIDUS>\n    <STRUCTURE>\n      <DIVISIONS>\n");
        let mut divisions: Vec<&str> = self
            .teachers
            .iter()
            .flat_map(|t| t.services.iter().map(|(d, _)| d.as_str()))
            .collect();
        divisions.sort();
        divisions.dedup();
        for d in divisions {
            x.push_str(&format!("        <DIVISION CODE=\"{}\">\n          <LIBELLE_LONG>{}</LIBELLE_LONG>\n          <SERVICES>\n", esc(d), esc(d)));
            for t in &self.teachers {
                for (_, subject) in t.services.iter().filter(|(td, _)| td == d) {
                    x.push_str(&format!(
                        "            <SERVICE CODE_MATIERE=\"{subject}\" CODE_MOD_COURS=\"CG\">\n              <ENSEIGNANTS>\n                <ENSEIGNANT ID=\"{}\" TYPE=\"epp\"/>\n              </ENSEIGNANTS>\n            </SERVICE>\n",
                        t.id
                    ));
                }
            }
            x.push_str("          </SERVICES>\n        </DIVISION>\n");
        }
        x.push_str("      </DIVISIONS>\n    </STRUCTURE>\n  </DONNEES>\n</STS_EDT>\n");
        latin9(&x)
    }

    fn header(&self, root: &str, version: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<{root} VERSION=\"{version}\">\n  <PARAMETRES>\n    <UAJ>{}</UAJ>\n    <ANNEE_SCOLAIRE>{}</ANNEE_SCOLAIRE>\n    <DATE_EXPORT>01/09/{}</DATE_EXPORT>\n  </PARAMETRES>\n",
            self.uai, self.year, self.year
        )
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// Encodes in ISO-8859-15 (every generated character has a place in it).
pub fn latin9(text: &str) -> Vec<u8> {
    encoding_rs::ISO_8859_15.encode(text).0.into_owned()
}

/// A zip archive of `entries` (name, bytes), deflated, as SIECLE hands them out.
pub fn zip(entries: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        writer
            .start_file(*name, options)
            .map_err(std::io::Error::other)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish().map_err(std::io::Error::other)?.into_inner())
}
