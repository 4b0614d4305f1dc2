//! Which open connections give way when the webhook needs room: at the cap on connections, for a
//! new connection; at the budget of body bytes, for a new piece of a body. The rule is the same
//! for both: the connection that made no progress the longest goes first, never one whose
//! request is read and being answered. A client that is sending (as the API server sends a
//! review, at once) is then never the one to go while another stalls.
//!
//! The adapter (`adapters/src/connections`) keeps the connections and their stamps; this is only
//! the choice, over a snapshot of them.

/// What the choice knows of one open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub id: u64,
    /// When it last made progress, on one monotonic clock for all.
    pub progress: u64,
    /// Its request has been read and is being answered: it never gives way.
    pub answering: bool,
    /// Bytes of a request's body it holds.
    pub body_bytes: usize,
}

/// The connection to close for a new one at the cap: of those not answering, the one that made
/// no progress the longest (of two stamped at once, the older id); `None` when every one is
/// answering.
pub fn for_a_connection(open: impl IntoIterator<Item = Open>) -> Option<u64> {
    open.into_iter()
        .filter(|connection| !connection.answering)
        .map(|connection| (connection.progress, connection.id))
        .min()
        .map(|(_, id)| id)
}

/// The connections to close so that `needed` more bytes of body fit where `room` are free: of
/// those holding body bytes and not answering, the ones that made no progress the longest, until
/// their bytes make the room; none when the room is there already, `None` when even all of them
/// would not make it (then nobody should go).
pub fn for_a_body(
    open: impl IntoIterator<Item = Open>,
    room: usize,
    needed: usize,
) -> Option<Vec<u64>> {
    let mut holders: Vec<Open> = open
        .into_iter()
        .filter(|connection| !connection.answering && connection.body_bytes > 0)
        .collect();
    holders.sort_by_key(|connection| (connection.progress, connection.id));
    let mut room = room;
    let mut going = Vec::new();
    for holder in holders {
        if room >= needed {
            break;
        }
        room += holder.body_bytes;
        going.push(holder.id);
    }
    (room >= needed).then_some(going)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn open(id: u64, progress: u64, answering: bool, body_bytes: usize) -> Open {
        Open {
            id,
            progress,
            answering,
            body_bytes,
        }
    }

    #[rstest]
    #[case::the_stalled_longest(&[open(0, 30, false, 0), open(1, 10, false, 0), open(2, 20, false, 0)], Some(1))]
    #[case::a_tie_goes_to_the_older(&[open(5, 10, false, 0), open(3, 10, false, 0)], Some(3))]
    #[case::never_one_answering(&[open(0, 10, true, 0), open(1, 20, false, 0)], Some(1))]
    #[case::nobody_when_all_answer(&[open(0, 10, true, 0), open(1, 20, true, 0)], None)]
    #[case::nobody_when_none_is_open(&[], None)]
    fn a_new_connection_closes(#[case] open: &[Open], #[case] goes: Option<u64>) {
        assert_eq!(for_a_connection(open.iter().copied()), goes);
    }

    #[rstest]
    #[case::none_when_it_fits(&[open(0, 10, false, 50)], 20, 20, Some(vec![]))]
    #[case::the_stalled_longest_first(&[open(0, 30, false, 50), open(1, 10, false, 50)], 0, 40, Some(vec![1]))]
    #[case::as_many_as_make_the_room(&[open(0, 30, false, 50), open(1, 10, false, 50), open(2, 20, false, 50)], 10, 100, Some(vec![1, 2]))]
    #[case::the_room_free_counts(&[open(0, 30, false, 50), open(1, 10, false, 50)], 60, 100, Some(vec![1]))]
    #[case::exactly_enough(&[open(0, 10, false, 50)], 50, 100, Some(vec![0]))]
    #[case::not_those_without_a_body(&[open(0, 10, false, 0), open(1, 20, false, 50)], 0, 40, Some(vec![1]))]
    #[case::not_those_answering(&[open(0, 10, true, 50), open(1, 20, false, 50)], 0, 40, Some(vec![1]))]
    #[case::a_tie_goes_to_the_older(&[open(4, 10, false, 50), open(2, 10, false, 50)], 0, 40, Some(vec![2]))]
    #[case::nobody_when_all_would_not_do(&[open(0, 10, false, 50), open(1, 20, true, 500)], 0, 60, None)]
    fn a_new_piece_of_a_body_closes(
        #[case] open: &[Open],
        #[case] room: usize,
        #[case] needed: usize,
        #[case] going: Option<Vec<u64>>,
    ) {
        assert_eq!(for_a_body(open.iter().copied(), room, needed), going);
    }
}
