use super::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

const FRAME_US: i64 = 20_000;
const SEQ0: u16 = 65_500; // wraps during every long test
const TS0: u32 = u32::MAX - 50 * 960;

/// What a pop gave, with payloads decoded back to the frame index the test put in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Nothing,
    Frame(u32),
    Missing(Option<u32>),
    Stretch,
}

fn index_of(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().unwrap())
}

fn out(p: Playout<'_>) -> Out {
    match p {
        Playout::Nothing => Out::Nothing,
        Playout::Frame(payload) => Out::Frame(index_of(payload)),
        Playout::Missing { fec_from_next } => Out::Missing(fec_from_next.map(index_of)),
        Playout::Stretch => Out::Stretch,
    }
}

/// Packet `index` of a stream: its arrival time in µs after the start.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    at_us: i64,
    index: u32,
}

/// A sender whose frame period is `period_us` of our time, through a network adding
/// `base_us` plus uniform ±`noise_us`, losing the packets `lose` picks.
fn stream(n: u32, period_us: f64, base_us: i64, noise_us: i64, seed: u64, lose: impl Fn(u32) -> bool) -> Vec<Arrival> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut arrivals: Vec<Arrival> = (0..n)
        .filter_map(|index| {
            let noise = if noise_us > 0 { rng.random_range(-noise_us..=noise_us) } else { 0 };
            let at_us = (f64::from(index) * period_us) as i64 + base_us + noise;
            (!lose(index)).then_some(Arrival { at_us, index })
        })
        .collect();
    arrivals.sort_by_key(|a| a.at_us);
    arrivals
}

fn push(buf: &mut JitterBuffer, t0: Instant, a: Arrival) -> Pushed {
    let seq = SEQ0.wrapping_add(a.index as u16);
    let ts = TS0.wrapping_add(a.index.wrapping_mul(960));
    buf.push(seq, ts, &a.index.to_be_bytes(), t0 + Duration::from_micros(a.at_us as u64))
}

/// Feeds arrivals and pops every 20 ms of our clock; returns each pop with the stats after it.
fn play(buf: &mut JitterBuffer, arrivals: &[Arrival], pops: usize) -> Vec<(Out, JitterStats)> {
    let t0 = Instant::now();
    let mut pending = arrivals.iter().peekable();
    (0..pops as i64)
        .map(|k| {
            let now_us = k * FRAME_US + FRAME_US / 2;
            while let Some(a) = pending.next_if(|a| a.at_us <= now_us) {
                push(buf, t0, *a);
            }
            let o = out(buf.pop(t0 + Duration::from_micros(now_us as u64)));
            (o, buf.stats())
        })
        .collect()
}

fn frames(outs: &[(Out, JitterStats)]) -> Vec<u32> {
    outs.iter().filter_map(|(o, _)| if let Out::Frame(i) = o { Some(*i) } else { None }).collect()
}

fn count(outs: &[(Out, JitterStats)], pred: impl Fn(&Out) -> bool) -> usize {
    outs.iter().filter(|(o, _)| pred(o)).count()
}

fn assert_increasing(played: &[u32]) {
    assert!(played.windows(2).all(|w| w[0] < w[1]), "frames out of order: {played:?}");
}

#[test]
fn nothing_before_the_first_packet_then_waits_for_the_initial_delay() {
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    assert_eq!(buf.pop(t0), Playout::Nothing);
    push(&mut buf, t0, Arrival { at_us: 0, index: 0 });
    assert_eq!(buf.pop(t0), Playout::Nothing, "holding for the 40 ms initial target");
    push(&mut buf, t0, Arrival { at_us: 20_000, index: 1 });
    assert_eq!(out(buf.pop(t0 + Duration::from_millis(20))), Out::Frame(0));
    assert_eq!(out(buf.pop(t0 + Duration::from_millis(40))), Out::Frame(1));
}

#[test]
fn in_order_stream_plays_every_frame_in_order() {
    let arrivals = stream(500, 20_000.0, 5_000, 0, 1, |_| false);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let outs = play(&mut buf, &arrivals, 500);
    let played = frames(&outs);
    assert_increasing(&played);
    let s = buf.stats();
    assert_eq!((s.lost, s.late, s.underruns, s.stretched, s.reordered), (0, 0, 0, 0, 0));
    // With no jitter the target falls from the initial 40 ms to the 20 ms floor by dropping.
    assert_eq!(s.target, Duration::from_millis(20));
    assert_eq!(
        played.len() as u64 + s.dropped,
        u64::from(*played.last().unwrap()) + 1,
        "only dropped frames are skipped"
    );
    assert!(s.dropped <= 2, "dropped {}", s.dropped);
}

#[test]
fn reordered_packets_play_in_sequence() {
    // Every pair arrives swapped: the even one 20 ms late, behind its successor.
    let mut arrivals: Vec<Arrival> = (0..600u32)
        .map(|index| {
            let slot = if index % 2 == 0 { index + 1 } else { index - 1 };
            Arrival { at_us: i64::from(slot) * FRAME_US + 5_000 + i64::from(index % 2), index }
        })
        .collect();
    arrivals.sort_by_key(|a| a.at_us);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let outs = play(&mut buf, &arrivals, 600);
    let played = frames(&outs);
    assert_increasing(&played);
    let s = buf.stats();
    assert!(s.reordered >= 290, "reordered {}", s.reordered);
    assert_eq!(s.late, 0);
    assert_eq!(s.lost, 0);
    assert!(s.target >= Duration::from_millis(40), "reordering shows as jitter: {:?}", s.target);
}

#[test]
fn five_percent_loss_gives_missing_with_fec_from_the_next_packet() {
    let lose = |i: u32| i % 20 == 7;
    let arrivals = stream(1_000, 20_000.0, 5_000, 5_000, 2, lose);
    let config = JitterConfig { min_delay: Duration::from_millis(60), ..JitterConfig::default() };
    let mut buf = JitterBuffer::new(config);
    let outs = play(&mut buf, &arrivals, 1_000);
    let played = frames(&outs);
    let last = *played.last().unwrap();
    let dropped_by_network = (played[0]..last).filter(|&i| lose(i)).count();
    let missing: Vec<Option<u32>> =
        outs.iter().filter_map(|(o, _)| if let Out::Missing(f) = o { Some(*f) } else { None }).collect();
    assert_eq!(missing.len(), dropped_by_network);
    for (i, (o, _)) in outs.iter().enumerate() {
        if let Out::Missing(fec) = o {
            let next = fec.expect("the next packet is in the buffer");
            assert!(lose(next - 1), "FEC comes from the packet after the lost one");
            assert_eq!(outs[i + 1].0, Out::Frame(next), "and that packet plays next");
        }
    }
    assert_eq!(buf.stats().lost as usize, dropped_by_network);
    assert_eq!(buf.stats().late, 0);
}

#[test]
fn random_loss_is_counted_and_never_plays_out_of_order() {
    let mut rng = StdRng::seed_from_u64(3);
    let lost: Vec<bool> = (0..3_000).map(|_| rng.random_bool(0.05)).collect();
    let arrivals = stream(3_000, 20_000.0, 5_000, 8_000, 4, |i| lost[i as usize]);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let outs = play(&mut buf, &arrivals, 3_000);
    let played = frames(&outs);
    assert_increasing(&played);
    let s = buf.stats();
    let network_lost = (played[0]..*played.last().unwrap()).filter(|&i| lost[i as usize]).count() as u64;
    // Every frame between first and last played is a frame, a loss, a late arrival or a drop.
    let span = u64::from(*played.last().unwrap() - played[0]) + 1;
    assert_eq!(played.len() as u64 + s.lost + s.dropped, span);
    assert!(s.lost >= network_lost && s.lost <= network_lost + s.late, "lost {} of {network_lost}", s.lost);
    assert!(s.late <= 5, "late {}", s.late);
}

#[test]
fn a_packet_behind_the_playout_point_is_discarded_as_late() {
    let late_index = 100;
    let mut arrivals = stream(300, 20_000.0, 5_000, 0, 5, |_| false);
    for a in &mut arrivals {
        if a.index == late_index {
            a.at_us += 400_000;
        }
    }
    arrivals.sort_by_key(|a| a.at_us);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let outs = play(&mut buf, &arrivals, 300);
    assert_eq!(count(&outs, |o| *o == Out::Missing(Some(late_index + 1))), 1);
    assert!(!frames(&outs).contains(&late_index));
    let s = buf.stats();
    assert_eq!((s.late, s.lost), (1, 1));
}

#[test]
fn duplicates_are_dropped() {
    let t0 = Instant::now();
    let mut buf = JitterBuffer::new(JitterConfig::default());
    for index in 0..3 {
        let a = Arrival { at_us: i64::from(index) * FRAME_US, index };
        assert_eq!(push(&mut buf, t0, a), Pushed::Stored);
        assert_eq!(push(&mut buf, t0, a), Pushed::Duplicate);
    }
    let now = t0 + Duration::from_millis(60);
    let played: Vec<Out> = (0..3).map(|_| out(buf.pop(now))).collect();
    assert_eq!(played, [Out::Frame(0), Out::Frame(1), Out::Frame(2)]);
    assert_eq!(buf.stats().duplicates, 3);
}

/// Ten minutes of a sender whose clock runs 0.5 % fast or slow against ours, with ±5 ms jitter.
fn drifting(rate: f64) -> (Vec<(Out, JitterStats)>, JitterStats) {
    let frames_sent = (30_000.0 * rate) as u32;
    let arrivals = stream(frames_sent, 20_000.0 / rate, 5_000, 5_000, 6, |_| false);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let outs = play(&mut buf, &arrivals, 30_000);
    let stats = buf.stats();
    (outs, stats)
}

#[test]
fn fast_sender_clock_does_not_grow_the_delay() {
    let (outs, s) = drifting(1.005);
    let settled = &outs[500..];
    let deepest = settled.iter().map(|(_, s)| s.depth).max().unwrap();
    assert!(deepest <= Duration::from_millis(120), "depth grew to {deepest:?}");
    // 0.5 % of 30 000 frames = 150 extra frames, each dropped once.
    assert!((130..=170).contains(&s.dropped), "dropped {}", s.dropped);
    assert_eq!((s.underruns, s.lost, s.late), (0, 0, 0));
    assert_increasing(&frames(&outs));
}

#[test]
fn slow_sender_clock_does_not_run_the_buffer_dry() {
    let (outs, s) = drifting(0.995);
    let settled = &outs[500..];
    let concealed = count(settled, |o| matches!(o, Out::Missing(_)));
    let deepest = settled.iter().map(|(_, s)| s.depth).max().unwrap();
    assert_eq!(concealed, 0, "never ran dry after settling");
    assert!(deepest <= Duration::from_millis(100), "depth grew to {deepest:?}");
    // 150 frames short over ten minutes, made up by stretching, not by running dry.
    assert!((130..=170).contains(&s.stretched), "stretched {}", s.stretched);
    assert!(s.underruns <= 1, "underruns {}", s.underruns);
    assert_eq!(s.lost, 0);
    assert_increasing(&frames(&outs));
}

#[test]
fn target_follows_the_measured_jitter_within_bounds() {
    let calm = stream(1_500, 20_000.0, 5_000, 0, 7, |_| false);
    // Noise under half the frame period keeps arrival order, so §6.4.1 jitter is E|X − Y|.
    let rough = stream(1_500, 20_000.0, 40_000, 9_000, 7, |_| false);
    let wild = stream(1_500, 20_000.0, 600_000, 500_000, 7, |_| false);
    let target = |arrivals: &[Arrival]| {
        let mut buf = JitterBuffer::new(JitterConfig::default());
        play(&mut buf, arrivals, 1_500);
        (buf.stats().target, buf.stats().jitter)
    };
    assert_eq!(target(&calm).0, Duration::from_millis(20));
    let (rough_target, rough_jitter) = target(&rough);
    // ±9 ms uniform: jitter ≈ 2·9/3 = 6 ms, target ≈ 3·6 + 20 = 38 ms.
    assert!(rough_jitter.abs_diff(Duration::from_millis(6)) < Duration::from_millis(2), "{rough_jitter:?}");
    assert!(rough_target.abs_diff(Duration::from_millis(38)) < Duration::from_millis(6), "{rough_target:?}");
    assert_eq!(target(&wild).0, Duration::from_millis(200), "capped at max");
}

#[test]
fn rough_network_plays_with_few_late_packets() {
    let arrivals = stream(3_000, 20_000.0, 40_000, 30_000, 8, |_| false);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let outs = play(&mut buf, &arrivals, 3_000);
    assert_increasing(&frames(&outs));
    let s = buf.stats();
    assert!(s.late <= 30, "late {} of 3000 (1 %)", s.late);
    assert!(s.underruns <= 3, "underruns {}", s.underruns);
}

#[test]
fn silence_without_packets_conceals_then_refills_without_resync() {
    // Discontinuous transmission: frames 200..300 are not sent; the sequence number does not
    // jump, the timestamp does (stream() stamps each frame with its own index).
    let arrivals = stream(600, 20_000.0, 5_000, 2_000, 11, |i| (200..300).contains(&i));
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    let mut outs = Vec::new();
    let mut pending = arrivals.iter().peekable();
    for k in 0..600i64 {
        let now_us = k * FRAME_US + FRAME_US / 2;
        while let Some(a) = pending.next_if(|a| a.at_us <= now_us) {
            // Renumber as the sender would: no sequence gap over the silence.
            let seq_index = if a.index >= 300 { a.index - 100 } else { a.index };
            let seq = SEQ0.wrapping_add(seq_index as u16);
            let ts = TS0.wrapping_add(a.index * 960);
            buf.push(seq, ts, &a.index.to_be_bytes(), t0 + Duration::from_micros(a.at_us as u64));
        }
        outs.push((out(buf.pop(t0 + Duration::from_micros(now_us as u64))), buf.stats()));
    }
    let played = frames(&outs);
    assert_increasing(&played);
    assert!(played.contains(&199) && played.contains(&300) && played.contains(&590));
    let s = buf.stats();
    assert_eq!((s.resyncs, s.late, s.lost, s.underruns), (0, 0, 0, 1));
    assert!(count(&outs, |o| *o == Out::Missing(None)) >= 95, "concealing through the silence");
}

#[test]
fn restart_of_the_far_end_resynchronises() {
    let t0 = Instant::now();
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let at = |k: u64| t0 + Duration::from_millis(20 * k);
    for k in 0..50u64 {
        buf.push(1_000 + k as u16, 5_000 + 960 * k as u32, &(k as u32).to_be_bytes(), at(k));
        buf.pop(at(k));
    }
    // The far end restarts: new random sequence and timestamp.
    assert_eq!(buf.push(40_000, 77_777_777, &1_000u32.to_be_bytes(), at(50)), Pushed::Held);
    assert_eq!(buf.push(40_001, 77_777_777 + 960, &1_001u32.to_be_bytes(), at(51)), Pushed::Resynced);
    let mut played = Vec::new();
    for k in 52..80u64 {
        buf.push(
            40_000 + (k - 50) as u16,
            77_777_777 + 960 * (k - 50) as u32,
            &(1_000 + k as u32 - 50).to_be_bytes(),
            at(k),
        );
        if let Out::Frame(i) = out(buf.pop(at(k))) {
            played.push(i);
        }
    }
    assert_eq!(played[0], 1_000, "the held packet is kept");
    assert_increasing(&played);
    assert!(played.len() >= 20);
    assert_eq!(buf.stats().resyncs, 1);
}

#[test]
fn a_timestamp_jump_with_continuous_sequence_resynchronises() {
    let t0 = Instant::now();
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let at = |k: u64| t0 + Duration::from_millis(20 * k);
    for k in 0..20u64 {
        buf.push(k as u16, 960 * k as u32, &[0; 4], at(k));
        buf.pop(at(k));
    }
    let far = 960 * 20 + 48_000 * 3_600; // an hour ahead of the arrival time
    assert_eq!(buf.push(20, far, &[0; 4], at(20)), Pushed::Held);
    assert_eq!(buf.push(21, far + 960, &[0; 4], at(21)), Pushed::Resynced);
}

#[test]
fn a_stray_packet_far_away_changes_nothing() {
    let arrivals = stream(200, 20_000.0, 5_000, 0, 9, |_| false);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    let mut outs = Vec::new();
    for (k, a) in arrivals.iter().enumerate() {
        push(&mut buf, t0, *a);
        if k == 100 {
            assert_eq!(buf.push(SEQ0.wrapping_add(30_000), 12_345, &[9; 4], t0), Pushed::Held);
        }
        outs.push((out(buf.pop(t0 + Duration::from_micros(a.at_us as u64 + 1))), buf.stats()));
    }
    assert_increasing(&frames(&outs));
    let s = buf.stats();
    assert_eq!((s.resyncs, s.rejected, s.lost), (0, 1, 0));
}

#[test]
fn a_burst_after_a_network_stall_is_cut_back_to_the_target() {
    // One second of packets held by the network, then delivered at once.
    let mut arrivals = stream(400, 20_000.0, 5_000, 0, 10, |_| false);
    for a in &mut arrivals {
        if (100..150).contains(&a.index) {
            a.at_us = 150 * FRAME_US;
        }
    }
    arrivals.sort_by_key(|a| a.at_us);
    let mut buf = JitterBuffer::new(JitterConfig::default());
    let outs = play(&mut buf, &arrivals, 400);
    let after_burst = &outs[152..];
    assert!(after_burst.iter().all(|(_, s)| s.depth <= Duration::from_millis(220)), "cut back at once");
    assert!(outs[200].1.depth <= Duration::from_millis(120), "{:?}", outs[200].1.depth);
    assert!(buf.stats().dropped >= 30);
    assert_increasing(&frames(&outs));
}

#[test]
fn oversized_payloads_are_refused() {
    let mut buf = JitterBuffer::new(JitterConfig { max_payload: 10, ..JitterConfig::default() });
    assert_eq!(buf.push(1, 1, &[0; 11], Instant::now()), Pushed::Rejected);
    assert_eq!(buf.pop(Instant::now()), Playout::Nothing);
}

#[test]
fn hostile_input_never_panics_and_keeps_depth_within_the_ring() {
    let mut rng = StdRng::seed_from_u64(12);
    let t0 = Instant::now();
    for round in 0..20 {
        let config = JitterConfig { capacity: 16 << (round % 3), ..JitterConfig::default() };
        let mut buf = JitterBuffer::new(config);
        let mut seq: u16 = rng.random();
        for _ in 0..5_000 {
            let at = t0 + Duration::from_micros(rng.random_range(0..10_000_000));
            match rng.random_range(0..10) {
                0 => seq = rng.random(),
                1..=5 => seq = seq.wrapping_add(rng.random_range(0..4)),
                _ => {}
            }
            let len = rng.random_range(0..1_600);
            let payload = vec![7u8; len];
            buf.push(seq, rng.random(), &payload, at);
            if rng.random_bool(0.5) {
                let _ = buf.pop(at);
            }
            assert!(buf.stats().depth <= config.frame * config.capacity as u32 * 2);
        }
    }
}
