//! The closed vocabularies of report requests and answers (media types, directions, order,
//! include, metrics, groupings, units), each an enum written once: its names as clients
//! write them, from which parsing, error messages and the OpenAPI schema (`ToSchema`)
//! derive, and, where Genesys names the same thing differently, the Genesys name beside it
//! (a `match`, checked for completeness by the compiler). No table indexed by position.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A closed vocabulary: an enum whose values have names.
pub trait Vocabulary: Copy + Sized + 'static {
    /// Every value, in documented order.
    const ALL: &'static [Self];

    /// The value's name, as clients write it.
    fn name(self) -> &'static str;

    /// The value called `name`, if any.
    #[must_use]
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|value| value.name() == name)
    }
}

/// Declares a closed vocabulary: the enum, serialised, deserialised and documented by the
/// names given, and its [`Vocabulary`].
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $vocabulary:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $name:tt, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            ToSchema,
        )]
        pub enum $vocabulary {
            $( $(#[$variant_meta])* #[serde(rename = $name)] $variant, )+
        }

        impl Vocabulary for $vocabulary {
            const ALL: &'static [Self] = &[$(Self::$variant),+];

            fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }
    };
}

vocabulary! {
    /// A media type, as Genesys knows it (`AnalyticsSession.mediaType`; the same names).
    pub enum MediaType {
        Callback = "callback",
        Chat = "chat",
        Cobrowse = "cobrowse",
        Email = "email",
        InternalMessage = "internalmessage",
        Message = "message",
        ScreenMonitoring = "screenmonitoring",
        ScreenShare = "screenshare",
        Unknown = "unknown",
        Video = "video",
        Voice = "voice",
    }
}

vocabulary! {
    /// A conversation's originating direction (Genesys' `originatingDirection`; the same
    /// names).
    pub enum Direction {
        Inbound = "inbound",
        Outbound = "outbound",
    }
}

vocabulary! {
    /// Sort order of search results, by conversation start.
    pub enum Order {
        /// Oldest first (the default).
        Asc = "asc",
        /// Newest first.
        Desc = "desc",
    }
}

impl Order {
    /// The other order.
    #[must_use]
    pub const fn opposite(self) -> Self {
        match self {
            Self::Asc => Self::Desc,
            Self::Desc => Self::Asc,
        }
    }
}

vocabulary! {
    /// What a search may attach to each hit.
    pub enum Include {
        /// The hit's live conversation view.
        Conversation = "conversation",
    }
}

vocabulary! {
    /// The unit of a metric's values.
    pub enum Unit {
        /// Events counted.
        Count = "count",
        /// Durations, in seconds.
        Seconds = "seconds",
    }
}

vocabulary! {
    /// A metric aggregates may be asked for.
    pub enum Metric {
        /// Conversations offered to a queue.
        Offered = "offered",
        /// Offers answered by an agent.
        Connected = "connected",
        /// Transfers.
        Transferred = "transferred",
        /// Handle time (talk + hold + after-call work).
        Handle = "handle",
        /// Talk time.
        Talk = "talk",
        /// Hold time.
        Hold = "hold",
        /// After-call work.
        Acw = "acw",
        /// Time in queue before an answer or abandon.
        Wait = "wait",
        /// Time in queue before abandoning.
        Abandon = "abandon",
        /// Time in queue before an answer.
        Answered = "answered",
        /// Time an agent was alerted.
        Alert = "alert",
    }
}

impl Metric {
    /// Genesys' name of the metric.
    #[must_use]
    pub const fn genesys(self) -> &'static str {
        match self {
            Self::Offered => "nOffered",
            Self::Connected => "nConnected",
            Self::Transferred => "nTransferred",
            Self::Handle => "tHandle",
            Self::Talk => "tTalk",
            Self::Hold => "tHeld",
            Self::Acw => "tAcw",
            Self::Wait => "tWait",
            Self::Abandon => "tAbandon",
            Self::Answered => "tAnswered",
            Self::Alert => "tAlert",
        }
    }

    /// The unit of the metric's values as this API gives them.
    #[must_use]
    pub const fn unit(self) -> Unit {
        match self {
            Self::Offered | Self::Connected | Self::Transferred => Unit::Count,
            Self::Handle
            | Self::Talk
            | Self::Hold
            | Self::Acw
            | Self::Wait
            | Self::Abandon
            | Self::Answered
            | Self::Alert => Unit::Seconds,
        }
    }
}

vocabulary! {
    /// A grouping aggregates may be asked for.
    pub enum GroupBy {
        QueueId = "queue_id",
        UserId = "user_id",
        MediaType = "media_type",
        Direction = "direction",
        WrapupCode = "wrapup_code",
        DivisionId = "division_id",
    }
}

impl GroupBy {
    /// Genesys' dimension of the grouping.
    #[must_use]
    pub const fn genesys(self) -> &'static str {
        match self {
            Self::QueueId => "queueId",
            Self::UserId => "userId",
            Self::MediaType => "mediaType",
            Self::Direction => "originatingDirection",
            Self::WrapupCode => "wrapUpCode",
            Self::DivisionId => "divisionId",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_values_and_serialise_as_themselves() {
        for metric in Metric::ALL {
            assert_eq!(Metric::parse(metric.name()), Some(*metric));
            assert_eq!(
                serde_json::to_value(metric).expect("json"),
                serde_json::json!(metric.name())
            );
        }
        assert_eq!(
            MediaType::parse("internalmessage"),
            Some(MediaType::InternalMessage)
        );
        assert_eq!(GroupBy::parse("direction"), Some(GroupBy::Direction));
        assert_eq!(Order::parse("Asc"), None);
    }

    #[test]
    fn every_duration_metric_is_a_genesys_timer_and_every_count_a_counter() {
        for metric in Metric::ALL {
            let prefix = match metric.unit() {
                Unit::Count => 'n',
                Unit::Seconds => 't',
            };
            assert!(metric.genesys().starts_with(prefix), "{metric:?}");
        }
    }
}
