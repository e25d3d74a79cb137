//! `avps-bridge echo`: sends test data through a TCP echo service and checks
//! that exactly the same bytes come back, with the time it took.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use remoteproc::avps::net;

/// The test data: a xorshift stream both halves can regenerate.
struct Pattern(u64);

impl Pattern {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Runs the check; the process exit status.
pub(crate) fn run(args: &[String]) -> i32 {
    let p = net::Subnet::DEFAULT.provider();
    let default = format!("{}.{}.{}.{}:{}", p[0], p[1], p[2], p[3], net::ECHO_PORT);
    let addr = args.first().map_or(default.as_str(), String::as_str);
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("avps-bridge echo: `{addr}` is not ADDRESS:PORT (for example {default})");
        return 2;
    };
    let bytes = match args.get(1).map(|b| b.parse::<usize>()) {
        None => 1 << 20,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("avps-bridge echo: the byte count must be a whole number");
            return 2;
        }
    };
    match check(addr, bytes) {
        Ok(took) => {
            let secs = took.as_secs_f64();
            println!(
                "echo {addr}: {bytes} bytes came back identical in {:.3} s ({:.1} KiB/s each way)",
                secs,
                bytes as f64 / 1024.0 / secs.max(1e-9)
            );
            0
        }
        Err(e) => {
            eprintln!("echo {addr}: {e}");
            1
        }
    }
}

fn check(addr: SocketAddr, bytes: usize) -> Result<Duration, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut pattern = Pattern(SEED);
        let mut buf = [0u8; 4096];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len());
            pattern.fill(&mut buf[..n]);
            writer.write_all(&buf[..n])?;
            left -= n;
        }
        writer.shutdown(Shutdown::Write)
    });
    let mut reader = stream;
    let mut expect = Pattern(SEED);
    let (mut got, mut want) = ([0u8; 4096], [0u8; 4096]);
    let mut received = 0usize;
    loop {
        let n = match reader.read(&mut got) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(format!("after {received} of {bytes} bytes came back: {e}")),
        };
        if received + n > bytes {
            return Err(format!(
                "more came back than was sent ({} bytes)",
                received + n
            ));
        }
        expect.fill(&mut want[..n]);
        if let Some(i) = (0..n).find(|i| got[*i] != want[*i]) {
            return Err(format!("byte {} came back different", received + i));
        }
        received += n;
    }
    let took = start.elapsed();
    match sender.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("sending failed: {e}")),
        Err(_) => return Err("the sending thread failed".into()),
    }
    if received != bytes {
        return Err(format!("only {received} of {bytes} bytes came back"));
    }
    Ok(took)
}
