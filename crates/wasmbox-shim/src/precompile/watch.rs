//! The node daemon: compiles every wasm image on the node, then each one containerd creates or
//! updates, for as long as it runs. It subscribes before listing, so an image pulled meanwhile
//! is seen (at worst twice: the second time is a cache hit). When containerd goes away (a
//! restart), it connects again, and lists again what it may have missed.

use std::time::Duration;

use super::compiler::{Compiler, Outcome};
use super::image::Scope;
use super::options::Options;
use crate::artifact::{Client, ImageEvent};

/// Pause before connecting again after containerd went away.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub fn run(options: &Options, compiler: &Compiler) -> i32 {
    let mut complained = false;
    loop {
        match watch(options, compiler, &mut complained) {
            Ok(()) => log::warn!("containerd ended the image event stream; subscribing again"),
            Err(e) if !complained => {
                log::warn!("{e:#}; trying again every {RECONNECT_DELAY:?}");
                complained = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(RECONNECT_DELAY);
    }
}

fn watch(options: &Options, compiler: &Compiler, complained: &mut bool) -> anyhow::Result<()> {
    let mut client = Client::connect(&options.address, "default")?;
    let mut events = client.image_events();
    *complained = false;
    let namespaces = if options.namespaces.is_empty() {
        client.namespaces()?
    } else {
        options.namespaces.clone()
    };
    for namespace in &namespaces {
        client.set_namespace(namespace);
        for name in client.images()? {
            compile(compiler, &mut client, &ImageEvent { namespace: namespace.clone(), name });
        }
    }
    log::info!("watching containerd at {} for new images", options.address);
    while let Some(event) = client.next_image_event(&mut events)? {
        if options.namespaces.is_empty() || options.namespaces.contains(&event.namespace) {
            compile(compiler, &mut client, &event);
        }
    }
    Ok(())
}

/// One image: a failure is logged and the daemon goes on with the next.
fn compile(compiler: &Compiler, client: &mut Client, image: &ImageEvent) {
    let ImageEvent { namespace, name } = image;
    match compiler.image(client, namespace, name, Scope::LooksWasm) {
        Ok(outcome @ Outcome::Compiled { .. }) => log::info!("{namespace}/{name}: {outcome}"),
        Ok(outcome) => log::debug!("{namespace}/{name}: {outcome}"),
        Err(e) => log::warn!("{namespace}/{name}: {e:#}"),
    }
}
