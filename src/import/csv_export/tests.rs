use std::io::Write as _;

use super::*;

fn export(text: &str) -> (tempfile::NamedTempFile, CsvExport) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let e = CsvExport::open(f.path(), "users.csv").unwrap();
    (f, e)
}

fn rows(e: &mut CsvExport) -> Vec<CsvRow> {
    let mut out = Vec::new();
    while let Some(r) = e.next_row() {
        out.push(r.unwrap());
    }
    out
}

const HEADER: &str = "id,first_name,last_name,username,primary_email_address,primary_phone_number,verified_email_addresses,unverified_email_addresses,verified_phone_numbers,unverified_phone_numbers,totp_secret,password_digest,password_hasher\n";

#[test]
fn reads_clerks_sample_row() {
    let text = format!(
        "{HEADER}user_2YDryYFVMM1W1plDDKz7Gzf4we6,Jane,Doe,,jane.doe@test.com,,janedoe@test.com,,,,,$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2,bcrypt\n"
    );
    let (_f, mut e) = export(&text);
    assert!(e.missing_columns.is_empty());
    let rows = rows(&mut e);
    let CsvRow::User(u) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(u.id, "user_2YDryYFVMM1W1plDDKz7Gzf4we6");
    assert_eq!(u.primary_email.as_deref(), Some("jane.doe@test.com"));
    assert_eq!(u.verified_emails, vec!["janedoe@test.com"]);
    assert_eq!(u.hasher.as_deref(), Some("bcrypt"));
    assert!(u.digest.as_ref().unwrap().expose().starts_with("$2b$10$"));
    assert_eq!(u.line, 2);
    assert!(!format!("{u:?}").contains("$2b$"), "digest in Debug");
}

#[test]
fn columns_are_found_by_name_in_any_order_with_extras() {
    let text = "\u{feff}Email_Ignored,created_at,password_hasher,id,primary_email_address,password_digest\n\
                x,2026-02-18T12:39:14Z,argon2id,user_1,A@B.com,\"$argon2id$v=19$m=64,t=4,p=8$c2FsdA$aGFzaA\"\n";
    let (_f, mut e) = export(text);
    assert!(e.missing_columns.contains(&"totp_secret"));
    let rows = rows(&mut e);
    let CsvRow::User(u) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(u.primary_email.as_deref(), Some("a@b.com"));
    assert_eq!(u.created_at, Some(1_771_418_354));
    assert_eq!(
        u.digest.as_ref().unwrap().expose(),
        "$argon2id$v=19$m=64,t=4,p=8$c2FsdA$aGFzaA"
    );
}

#[test]
fn quoted_multi_valued_cells_split_on_every_separator() {
    let text = format!(
        "{HEADER}user_1,\"Maria, Ana\",Silva,MariaS,m@x.com,+14155550101,\"m@x.com, n@x.com|o@x.com\",p@x.com;q@x.com,+14155550101,,,,\n"
    );
    let (_f, mut e) = export(&text);
    let rows = rows(&mut e);
    let CsvRow::User(u) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(u.first_name.as_deref(), Some("Maria, Ana"));
    assert_eq!(u.verified_emails, vec!["m@x.com", "n@x.com", "o@x.com"]);
    assert_eq!(u.unverified_emails, vec!["p@x.com", "q@x.com"]);
    assert_eq!(u.primary_phone.as_deref(), Some("+14155550101"));
    assert_eq!(u.username.as_deref(), Some("MariaS"));
}

#[test]
fn bad_cells_name_line_and_column_and_never_the_secret() {
    let text = format!(
        "{HEADER}user_ok,,,,ok@x.com,,,,,,,,\n\
         user_bad,,,,not-an-email,12345,,,,,SECRET1SECRET1!!,$2b$10$digestdigest,\n\
         ,,,,x@x.com,,,,,,,,\n"
    );
    let (_f, mut e) = export(&text);
    let rows = rows(&mut e);
    assert!(matches!(rows[0], CsvRow::User(_)));
    let CsvRow::Bad { id, issues } = &rows[1] else {
        panic!("{rows:?}")
    };
    assert_eq!(id.as_deref(), Some("user_bad"));
    let printed: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let all = printed.join("\n");
    assert!(
        all.contains("users.csv:3: column 5 (primary_email_address)"),
        "{all}"
    );
    assert!(
        all.contains("users.csv:3: column 6 (primary_phone_number)"),
        "{all}"
    );
    assert!(all.contains("column 11 (totp_secret)"), "{all}");
    assert!(all.contains("column 13 (password_hasher)"), "{all}");
    assert!(
        !all.contains("SECRET1") && !all.contains("digestdigest"),
        "{all}"
    );
    let CsvRow::Bad { id, issues } = &rows[2] else {
        panic!("{rows:?}")
    };
    assert_eq!(id, &None);
    assert!(issues[0].to_string().contains("users.csv:4: column 1 (id)"));
}

#[test]
fn a_missing_id_column_is_refused() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"email,name\na,b\n").unwrap();
    let err = CsvExport::open(f.path(), "x.csv").err().unwrap();
    assert!(err.to_string().contains("no `id` column"), "{err}");
}

#[test]
fn a_row_with_the_wrong_number_of_fields_is_invalid_with_its_line_and_counts() {
    // Line 2 lost its last 8 fields (digest and hasher among them); line 3 has
    // two extra; line 4 is whole.
    let text = format!(
        "{HEADER}user_short,Ann,Lee,,ann@example.com\n\
         user_long,Bob,Ray,,bob@example.com,,,,,,,$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2,bcrypt,x,y\n\
         user_ok,Cy,Po,,cy@example.com,,,,,,,$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2,bcrypt\n"
    );
    let (_f, mut e) = export(&text);
    let rows = rows(&mut e);
    assert_eq!(rows.len(), 3);
    for (row, id, line, fields) in [
        (&rows[0], "user_short", 2, 5),
        (&rows[1], "user_long", 3, 15),
    ] {
        let CsvRow::Bad { id: got, issues } = row else {
            panic!("a {fields}-field row was accepted: {row:?}")
        };
        assert_eq!(got.as_deref(), Some(id));
        assert_eq!(issues.len(), 1, "{issues:?}");
        let text = issues[0].to_string();
        assert!(text.contains(&format!("users.csv:{line}")), "{text}");
        assert!(
            text.contains(&format!("{fields} fields")) && text.contains("header has 13"),
            "{text}"
        );
    }
    assert!(matches!(&rows[2], CsvRow::User(u) if u.id == "user_ok"));
}
