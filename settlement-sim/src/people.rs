//! The simulator's built-in test people.
//!
//! Fake but well-formed: ID numbers carry a valid GB 11643 check digit, each
//! person has a social-security card, insurance types and balances chosen to
//! exercise the interesting paths (an employee with a personal account, a
//! resident without one, a person insured in another province, an elderly
//! person who uses a card instead of a phone).

use settlement_client::money::Money;

/// One insurance registration of a person (1101 `insuinfo[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insurance {
    /// `310` employee basic, `390` urban-rural resident, `340` retired cadre …
    pub insutype: &'static str,
    /// Person type within the insurance.
    pub psn_type: &'static str,
    /// Where insured (6 digits).
    pub insuplc_admdvs: &'static str,
    /// Employer name.
    pub emp_name: &'static str,
}

/// A test person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Platform person number.
    pub psn_no: &'static str,
    /// Name.
    pub name: &'static str,
    /// ID-card number (with check digit).
    pub certno: String,
    /// `1` male, `2` female.
    pub gend: &'static str,
    /// Birth date `yyyy-MM-dd`.
    pub brdy: &'static str,
    /// Social-security card number (`mdtrt_cert_type 03`).
    pub card_no: &'static str,
    /// Social-security card serial (`card_sn`).
    pub card_sn: &'static str,
    /// Insurance registrations.
    pub insurances: Vec<Insurance>,
    /// Personal-account balance at start.
    pub balance: Money,
    /// A short note for the HIS vendor's sandbox list.
    pub note: &'static str,
}

/// GB 11643 check character for the first 17 digits of an ID number.
pub fn id_check_char(first17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b.saturating_sub(b'0')) * w)
        .sum();
    C[(sum % 11) as usize]
}

fn id(first17: &str) -> String {
    format!("{first17}{}", id_check_char(first17))
}

/// The built-in people, in a stable order (index 0 is the demo's default).
pub fn builtin() -> Vec<Person> {
    vec![
        Person {
            psn_no: "42000000000000000001",
            name: "张三",
            certno: id("42138119800101123"),
            gend: "1",
            brdy: "1980-01-01",
            card_no: "K42138100001",
            card_sn: "421381D15600000500BF7C7A1",
            insurances: vec![Insurance {
                insutype: "310",
                psn_type: "11",
                insuplc_admdvs: "421381",
                emp_name: "广水市示例有限公司",
            }],
            balance: Money(100_000),
            note: "employee (310) with 1000.00 in the personal account",
        },
        Person {
            psn_no: "42000000000000000002",
            name: "李四",
            certno: id("42138119560302242"),
            gend: "2",
            brdy: "1956-03-02",
            card_no: "K42138100002",
            card_sn: "421381D15600000500BF7C7A2",
            insurances: vec![Insurance {
                insutype: "390",
                psn_type: "1",
                insuplc_admdvs: "421381",
                emp_name: "",
            }],
            balance: Money(0),
            note: "urban-rural resident (390), no personal account; elderly, uses the card",
        },
        Person {
            psn_no: "11000000000000000003",
            name: "王五",
            certno: id("11010519900715331"),
            gend: "1",
            brdy: "1990-07-15",
            card_no: "K11010500003",
            card_sn: "110105D15600000500BF7C7A3",
            insurances: vec![Insurance {
                insutype: "310",
                psn_type: "11",
                insuplc_admdvs: "110105",
                emp_name: "北京示例科技有限公司",
            }],
            balance: Money(25_050),
            note: "insured in Beijing (110105): cross-province, insuplc_admdvs differs",
        },
        Person {
            psn_no: "42000000000000000004",
            name: "赵六",
            certno: id("42138119751111002"),
            gend: "2",
            brdy: "1975-11-11",
            card_no: "K42138100004",
            card_sn: "421381D15600000500BF7C7A4",
            insurances: vec![
                Insurance {
                    insutype: "310",
                    psn_type: "11",
                    insuplc_admdvs: "421381",
                    emp_name: "广水市示例医院",
                },
                Insurance {
                    insutype: "390",
                    psn_type: "1",
                    insuplc_admdvs: "421381",
                    emp_name: "",
                },
            ],
            balance: Money(5_000),
            note: "two insurance types: the caller must choose insutype",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_matches_a_known_id() {
        // The standard's worked example: 11010519491231002X.
        assert_eq!(id_check_char("11010519491231002"), 'X');
    }

    #[test]
    fn people_are_distinct() {
        let p = builtin();
        for (i, a) in p.iter().enumerate() {
            assert_eq!(a.certno.len(), 18);
            for b in &p[i + 1..] {
                assert_ne!(a.psn_no, b.psn_no);
                assert_ne!(a.certno, b.certno);
                assert_ne!(a.card_no, b.card_no);
            }
        }
    }
}
