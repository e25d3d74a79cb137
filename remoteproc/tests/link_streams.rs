//! Batches and bursts between our two ends: what a batch shows the peer
//! and when, bursts filling buffers in place, back-pressure and misuse.

mod common;

use common::*;
use remoteproc::LinkError;
use shmem::Window;

#[test]
fn a_batch_is_seen_whole_at_its_end_and_never_stalls_the_peer() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, hb, rb) = up(w, hc, rc);
        let (he, re) = endpoints(&mut h, &mut r);
        let word = |i: u32| i.to_le_bytes();

        // Sends in a batch reach the peer together, at its end, with at most
        // one doorbell.
        let rings = hb.count(1);
        let mut b = h.batch();
        for i in 0..5 {
            assert!(b.send(he, re, &word(i)).unwrap(), "{name}");
        }
        assert!(
            r.receive().unwrap().is_none(),
            "{name}: seen before the batch ended"
        );
        b.finish().unwrap();
        assert!(hb.count(1) - rings <= 1, "{name}: one doorbell per batch");
        for i in 0..5 {
            assert_eq!(expect_message(&mut r), (he, re, word(i).to_vec()), "{name}");
        }

        // The remote's sends too; dropping the batch ends it.
        let rings = rb.count(0);
        {
            let mut b = r.batch();
            for i in 0..3 {
                assert!(b.send(re, he, &word(i)).unwrap(), "{name}");
            }
            assert!(
                h.receive().unwrap().is_none(),
                "{name}: seen before the batch ended"
            );
        }
        assert!(rb.count(0) - rings <= 1, "{name}: one doorbell per batch");
        for i in 0..3 {
            assert_eq!(expect_message(&mut h).2, word(i), "{name}");
        }

        // A batch holding every TX buffer publishes them when it runs out:
        // the peer gets all of them while the batch is still open, and the
        // batch goes on once buffers come back.
        let mut b = h.batch();
        let mut sent = 0;
        while b.send(he, re, &word(sent)).unwrap() {
            sent += 1;
        }
        assert_eq!(sent, 16, "{name}: every TX buffer");
        for i in 0..sent {
            assert_eq!(expect_message(&mut r).2, word(i), "{name}");
        }
        assert!(
            b.send(he, re, &word(sent)).unwrap(),
            "{name}: buffers came back"
        );
        drop(b);
        assert_eq!(expect_message(&mut r).2, word(sent), "{name}");

        // Releases in a batch are published once the receiver runs dry: the
        // sender is out of buffers until then, never for longer.
        for i in 0..16 {
            assert!(h.send(he, re, &word(i)).unwrap(), "{name}");
        }
        let mut b = r.batch();
        for i in 0..16 {
            assert_eq!(expect_message(&mut b).2, word(i), "{name}");
        }
        assert!(
            !h.send(he, re, b"x").unwrap(),
            "{name}: releases seen early"
        );
        assert!(b.receive().unwrap().is_none(), "{name}");
        assert!(h.send(he, re, b"x").unwrap(), "{name}: releases not seen");
        drop(b);
        assert_eq!(expect_message(&mut r).2, b"x", "{name}");

        // dispatch gives buffers back every eighth of the ring (two here) as
        // it goes, inside a batch too: a sender that filled the ring refills
        // while the receiver still works through it. The rest go back at
        // its end.
        for i in 0..16 {
            assert!(h.send(he, re, &word(i)).unwrap(), "{name}");
        }
        assert!(!h.send(he, re, b"x").unwrap(), "{name}: ring full");
        let (mut seen, mut refilled) = (0, None);
        let mut b = r.batch();
        let n = b
            .dispatch(
                |_| {
                    seen += 1;
                    if seen == 3 {
                        refilled = Some(h.send(he, re, b"x").unwrap());
                    }
                },
                |_| {},
            )
            .unwrap();
        assert_eq!(refilled, Some(true), "{name}: nothing released as it went");
        assert_eq!(n, 17, "{name}: the refill is taken by the same call");
        drop(b);
        for i in 0..16 {
            assert!(
                h.send(he, re, &word(i)).unwrap(),
                "{name}: not all released at the end"
            );
        }
        assert_eq!(r.dispatch(|_| {}, |_| {}).unwrap(), 16, "{name}");
        assert!(
            h.send(he, re, b"y").unwrap(),
            "{name}: dispatch released nothing"
        );
        assert_eq!(expect_message(&mut r).2, b"y", "{name}");

        // A batch opened inside another ends nothing: the outer one publishes.
        let mut outer = h.batch();
        let mut inner = outer.batch();
        assert!(inner.send(he, re, b"inner").unwrap(), "{name}");
        inner.finish().unwrap();
        assert!(
            r.receive().unwrap().is_none(),
            "{name}: the inner batch published"
        );
        outer.finish().unwrap();
        assert_eq!(expect_message(&mut r).2, b"inner", "{name}");
    }
}

#[test]
fn bursts_fill_in_place_publish_once_and_stop_at_back_pressure() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, hb, rb) = up(w, hc, rc);
        let (he, re) = endpoints(&mut h, &mut r);
        // Message `i` is `i + 1` words, word `k` holding `i * 100 + k`.
        let fill = |i: &mut u64| {
            let n = *i;
            *i += 1;
            move |tx: &mut remoteproc::TxBuffer<'_>| {
                let len = tx
                    .write_words_with(0, n as usize + 1, |k| n * 100 + k as u64)
                    .unwrap();
                Some(len)
            }
        };
        let expect = |link: &mut L<'_>, n: u64, src: u32, dst: u32| {
            let words: Vec<u64> = (0..=n).map(|k| n * 100 + k).collect();
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert_eq!(
                expect_message(link),
                (src, dst, bytes),
                "{name}: message {n}"
            );
        };

        // Five messages in one burst: one doorbell, all seen in order.
        let mut next = 0;
        let rings = hb.count(1);
        let sent = h.send_burst(he, re, 5, |tx| fill(&mut next)(tx)).unwrap();
        assert_eq!(sent, 5, "{name}");
        assert!(hb.count(1) - rings <= 1, "{name}: one doorbell per burst");
        for n in 0..5 {
            expect(&mut r, n, he, re);
        }

        // More than there are buffers: the ring's worth, then none until
        // the remote gives some back; nothing lost.
        let sent = h.send_burst(he, re, 100, |tx| fill(&mut next)(tx)).unwrap();
        assert_eq!(sent, 16, "{name}: one message per TX buffer");
        let none = h.send_burst(he, re, 1, |_| panic!("no buffer is free"));
        assert_eq!(none, Ok(0), "{name}");
        for n in 5..21 {
            expect(&mut r, n, he, re);
        }

        // `None` stops the burst without sending, and the buffer stays free.
        let mut calls = 0;
        let sent = h
            .send_burst(he, re, 10, |tx| {
                calls += 1;
                (calls <= 2).then(|| fill(&mut next)(tx)).flatten()
            })
            .unwrap();
        assert_eq!((sent, calls), (2, 3), "{name}");
        expect(&mut r, 21, he, re);
        expect(&mut r, 22, he, re);
        assert!(r.receive().unwrap().is_none(), "{name}: only two sent");

        // The remote streams too (its buffers come from the host's ring).
        let rings = rb.count(0);
        let sent = r.send_burst(re, he, 3, |tx| fill(&mut next)(tx)).unwrap();
        assert_eq!(sent, 3, "{name}");
        assert!(rb.count(0) - rings <= 1, "{name}: one doorbell per burst");
        for n in 23..26 {
            expect(&mut h, n, re, he);
        }

        // Inside a batch, a burst is seen at the batch's end.
        let mut b = h.batch();
        assert_eq!(b.send_burst(he, re, 2, |tx| fill(&mut next)(tx)), Ok(2));
        assert!(
            r.receive().unwrap().is_none(),
            "{name}: seen before the batch ended"
        );
        b.finish().unwrap();
        expect(&mut r, 26, he, re);
        expect(&mut r, 27, he, re);
    }
}

#[test]
fn a_burst_refuses_misuse_and_keeps_what_it_sent() {
    for (name, hc, rc) in configs() {
        let mem = region(WINDOW);
        let w = Window::from_words(&mem).with_bus_address(BUS);
        let (mut h, mut r, _, _) = up(w, hc, rc);
        let (he, re) = endpoints(&mut h, &mut r);
        for link in [&mut h, &mut r] {
            assert_eq!(
                link.send_burst(u32::MAX, 5, 1, |_| Some(1)),
                Err(LinkError::Usage),
                "{name}: ADDR_ANY"
            );
        }
        // The third payload claims more than its buffer holds: the first
        // two are delivered, the third is not, and the buffer is not lost.
        let mut k = 0u8;
        let long = h.send_burst(he, re, 5, |tx| {
            k += 1;
            tx.write(0, &[k]).unwrap();
            Some(if k == 3 { tx.capacity() + 1 } else { 1 })
        });
        assert_eq!(long, Err(LinkError::Usage), "{name}");
        assert_eq!(expect_message(&mut r).2, [1], "{name}");
        assert_eq!(expect_message(&mut r).2, [2], "{name}");
        assert!(r.receive().unwrap().is_none(), "{name}");
        assert!(!h.is_broken(), "{name}: misuse does not break the link");
        // A buffer swapped for another lent one is refused, and the one
        // swapped in given back; the one swapped out cannot be sent.
        let mut other = h.alloc_tx().unwrap().unwrap();
        let swapped = h.send_burst(he, re, 1, |tx| {
            std::mem::swap(tx, &mut other);
            Some(1)
        });
        assert_eq!(swapped, Err(LinkError::Usage), "{name}");
        assert_eq!(
            h.send_buffer(other, he, re, 1),
            Err(LinkError::Usage),
            "{name}"
        );
        assert!(r.receive().unwrap().is_none(), "{name}");
        // No buffer was lost.
        let mut sent = 0;
        while h.send(he, re, b"x").unwrap() {
            sent += 1;
        }
        assert_eq!(sent, 16, "{name}: every buffer");
        for _ in 0..sent {
            assert_eq!(expect_message(&mut r).2, b"x", "{name}");
        }
    }
}
