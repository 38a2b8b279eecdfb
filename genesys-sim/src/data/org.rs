//! The simulated org's directory: divisions, queues, agents and wrap-up codes.
//!
//! Names are fixed lists so demos read naturally; ids come from the seeded generator so the
//! same seed gives the same org.

use uuid::Uuid;

use crate::rng::SimRng;

/// An access-control division (conversations belong to the division of their first queue).
#[derive(Debug, Clone)]
pub struct Division {
    pub id: Uuid,
    pub name: String,
}

/// A routing queue.
#[derive(Debug, Clone)]
pub struct Queue {
    pub id: Uuid,
    pub name: String,
    /// Index into [`Org::divisions`].
    pub division: usize,
    /// The number callers dial to reach this queue.
    pub dnis: String,
}

/// An agent (a Genesys user).
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    /// Indexes into [`Org::queues`] this agent answers.
    pub queues: Vec<usize>,
}

/// A wrap-up code agents choose after an interaction.
#[derive(Debug, Clone)]
pub struct WrapupCode {
    pub id: Uuid,
    pub name: String,
}

/// The directory of one simulated org.
#[derive(Debug, Clone)]
pub struct Org {
    pub divisions: Vec<Division>,
    pub queues: Vec<Queue>,
    pub agents: Vec<Agent>,
    pub wrapup_codes: Vec<WrapupCode>,
}

const DIVISIONS: [&str; 3] = ["Home", "EMEA", "Americas"];
const QUEUES: [&str; 8] = [
    "Support",
    "Sales",
    "Billing",
    "Retention",
    "Tech Support",
    "Claims",
    "VIP",
    "Collections",
];
const WRAPUPS: [&str; 8] = [
    "Resolved",
    "Escalated",
    "Callback Scheduled",
    "Sale Completed",
    "No Sale",
    "Information Provided",
    "Complaint Logged",
    "Wrong Number",
];
const FIRST_NAMES: [&str; 12] = [
    "Jane", "Omar", "Li", "Priya", "Lukas", "Ana", "Kwame", "Sofia", "Mateo", "Aiko", "Noah",
    "Fatima",
];
const LAST_NAMES: [&str; 8] = [
    "Agent", "Murphy", "Schmidt", "Okafor", "Rossi", "Tanaka", "Silva", "Novak",
];

/// Number of agents in every simulated org.
pub const AGENT_COUNT: usize = 40;

impl Org {
    /// Builds the directory from the seeded stream.
    pub fn generate(rng: &mut SimRng) -> Self {
        let divisions = DIVISIONS
            .iter()
            .map(|name| Division {
                id: rng.uuid(),
                name: (*name).to_owned(),
            })
            .collect::<Vec<_>>();
        let queues = QUEUES
            .iter()
            .enumerate()
            .map(|(i, name)| Queue {
                id: rng.uuid(),
                name: (*name).to_owned(),
                division: i % divisions.len(),
                dnis: format!("tel:+1317555{:04}", 100 + i),
            })
            .collect::<Vec<_>>();
        let agents = (0..AGENT_COUNT)
            .map(|i| {
                let home = i % queues.len();
                let mut serves = vec![home];
                let second = rng.index(queues.len());
                if second != home {
                    serves.push(second);
                }
                Agent {
                    id: rng.uuid(),
                    name: format!(
                        "{} {}",
                        FIRST_NAMES[i % FIRST_NAMES.len()],
                        LAST_NAMES[(i / FIRST_NAMES.len() + i) % LAST_NAMES.len()]
                    ),
                    queues: serves,
                }
            })
            .collect();
        let wrapup_codes = WRAPUPS
            .iter()
            .map(|name| WrapupCode {
                id: rng.uuid(),
                name: (*name).to_owned(),
            })
            .collect();
        Self {
            divisions,
            queues,
            agents,
            wrapup_codes,
        }
    }

    /// Indexes of the agents that answer `queue`.
    pub fn agents_of(&self, queue: usize) -> Vec<usize> {
        self.agents
            .iter()
            .enumerate()
            .filter(|(_, agent)| agent.queues.contains(&queue))
            .map(|(i, _)| i)
            .collect()
    }
}
