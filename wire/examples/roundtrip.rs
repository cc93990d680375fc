//! Frames a handshake and two messages, feeds the bytes to a decoder one
//! byte at a time (as a slow socket would), and shows a refused peer.
//!
//! Run with `cargo run -p wire --example roundtrip`.

use serde::{Deserialize, Serialize};
use wire::{encode_frame, Decoder, Hello};

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Put { key: String, value: String },
    Get { key: String },
}

fn main() {
    let max = 1024;
    let mut bytes = encode_frame(&Hello::new(1, 42, 7), max).unwrap();
    for m in [
        Msg::Put {
            key: "x".into(),
            value: "1".into(),
        },
        Msg::Get { key: "x".into() },
    ] {
        bytes.extend(encode_frame(&m, max).unwrap());
    }
    println!("{} bytes on the wire", bytes.len());
    let ours = Hello::new(1, 42, 0);
    let mut d = Decoder::new(max);
    let mut greeted = false;
    for b in &bytes {
        d.push(std::slice::from_ref(b));
        if !greeted {
            if let Some(h) = d.next_message::<Hello>().unwrap() {
                ours.check(&h, |_| true).unwrap();
                println!("peer {} accepted", h.node);
                greeted = true;
            }
        } else if let Some(m) = d.next_message::<Msg>().unwrap() {
            println!("got {m:?}");
        }
    }
    let stranger = Hello::new(1, 99, 3);
    println!(
        "a peer of cluster 99: {}",
        ours.check(&stranger, |_| true).unwrap_err()
    );
    let mut d = Decoder::new(max);
    d.push(&u32::MAX.to_be_bytes());
    println!("a 4 GiB frame: {}", d.next_message::<Msg>().unwrap_err());
}
