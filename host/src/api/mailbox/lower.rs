//! A received message lowered into the guest by hand.
//!
//! Every receive lowers the entry it takes into the guest's memory. Lowered the derived way,
//! field by field, each of the dozen scalars of a `result<option<incoming>, send-error>`
//! holding a message looks the instance's memory up again through the store (in W1's
//! profile that lookup alone was 6% of the node's time). Here the common case, a message,
//! is written with one lookup for its payload and one for everything else; any other value
//! takes the derived path.
//!
//! This implements wasmtime's `Lower` with the hidden lowering API its own derive macros
//! expand to (`component::__internal`): not semver-stable, so tied to the wasmtime version
//! the lockfile pins. What keeps it honest: the type check is the derived types' own (an
//! instance whose WIT differs is refused, as before), the offsets are computed from their
//! ABI constants (checked at compile time against the derived sizes), the fields are
//! destructured exhaustively (a field added to the WIT breaks the build here), and a test
//! checks every field as a guest reads it, through both calls
//! (`a_received_message_reaches_the_guest_field_for_field_through_receive_and_send_receive`).

use bytes::Bytes;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentVariant, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};

use super::wit;
use super::{GuestIncoming, GuestMessage};

/// The canonical ABI offsets of a record's fields, from their ABI information.
const fn field_offsets<const N: usize>(fields: [CanonicalAbiInfo; N]) -> [usize; N] {
    let mut offsets = [0; N];
    let mut offset: u32 = 0;
    let mut i = 0;
    while i < N {
        offset = offset.next_multiple_of(fields[i].align32);
        offsets[i] = offset as usize;
        offset += fields[i].size32;
        i += 1;
    }
    offsets
}

/// A `pid`'s fields: node, incarnation, index.
const PID: [usize; 3] = field_offsets([u64::ABI, u32::ABI, u64::ABI]);
/// A `message`'s fields: sender, tag, payload (pointer, then length).
const MESSAGE: [usize; 3] = field_offsets([wit::Pid::ABI, u64::ABI, Bytes::ABI]);
/// Where a message's case payload lies in a lowered `incoming`.
const IN_INCOMING: usize = <GuestIncoming as ComponentVariant>::PAYLOAD_OFFSET32;
/// Where the `some` payload lies in a lowered `option<incoming>`.
const IN_OPTION: usize = <Option<GuestIncoming> as ComponentVariant>::PAYLOAD_OFFSET32;
/// Where the `ok` payload lies in a lowered `result<option<incoming>, send-error>`.
const IN_RESULT: usize =
    <Result<Option<GuestIncoming>, wit::SendError> as ComponentVariant>::PAYLOAD_OFFSET32;

const _: () = {
    // The offsets above describe the derived types, and every discriminant is one byte.
    assert!(PID[2] + 8 == wit::Pid::SIZE32);
    assert!(MESSAGE[2] + 8 == GuestMessage::SIZE32);
    assert!(<GuestIncoming as ComponentVariant>::CASES.len() <= 256);
    assert!(IN_INCOMING + GuestMessage::SIZE32 <= GuestIncoming::SIZE32);
    assert!(IN_OPTION + GuestIncoming::SIZE32 <= <Option<GuestIncoming>>::SIZE32);
    assert!(
        IN_RESULT + <Option<GuestIncoming>>::SIZE32
            <= <Result<Option<GuestIncoming>, wit::SendError>>::SIZE32
    );
};

/// Discriminants: `incoming.message`, `option.some`, `result.ok`.
const MESSAGE_CASE: u8 = 0;
const SOME: u8 = 1;
const OK: u8 = 0;

/// Writes `message` as an `incoming` at `offset + at` of the guest's memory, with
/// `discriminants` (offset from `offset`, value) of what encloses it: the payload into
/// memory the guest's `realloc` gives, then every scalar through one slice.
fn lower_message<T>(
    cx: &mut LowerContext<'_, T>,
    offset: usize,
    discriminants: &[(usize, u8)],
    at: usize,
    message: &GuestMessage,
) -> wasmtime::Result<()> {
    let GuestMessage { sender: wit::Pid { node, incarnation, index }, tag, payload } = message;
    let len = payload.len();
    let ptr = cx.realloc(0, 0, 1, len)?;
    let memory = cx.as_slice_mut();
    memory.get_mut(ptr..ptr + len).ok_or_else(out_of_bounds)?.copy_from_slice(payload);
    let end = at + IN_INCOMING + GuestMessage::SIZE32;
    let out = memory.get_mut(offset..offset + end).ok_or_else(out_of_bounds)?;
    for &(at, discriminant) in discriminants {
        out[at] = discriminant;
    }
    out[at] = MESSAGE_CASE;
    let m = &mut out[at + IN_INCOMING..];
    let sender = &mut m[MESSAGE[0]..];
    sender[PID[0]..][..8].copy_from_slice(&node.to_le_bytes());
    sender[PID[1]..][..4].copy_from_slice(&incarnation.to_le_bytes());
    sender[PID[2]..][..8].copy_from_slice(&index.to_le_bytes());
    m[MESSAGE[1]..][..8].copy_from_slice(&tag.to_le_bytes());
    // Both fit in u32: realloc took them as such.
    m[MESSAGE[2]..][..4].copy_from_slice(&(ptr as u32).to_le_bytes());
    m[MESSAGE[2] + 4..][..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// A write outside the guest's memory: a guest whose realloc or return pointer lies.
fn out_of_bounds() -> wasmtime::Error {
    wasmtime::format_err!("a receive's result lies outside the guest's memory")
}

/// Implements `ComponentType` and `Lower` for a wrapper of `$inner` with the derived type's
/// ABI and type check, lowering to memory by hand when `$message` finds a message (with the
/// enclosing discriminants it returns) and the derived way otherwise.
macro_rules! lowered_by_hand {
    ($wrapper:ident($inner:ty), $message:path) => {
        // SAFETY: the ABI, the flat representation and the type check are `$inner`'s, and
        // the memory lowering writes exactly the layout `$inner`'s derived lowering writes.
        unsafe impl ComponentType for $wrapper {
            type Lower = <$inner as ComponentType>::Lower;
            const ABI: CanonicalAbiInfo = <$inner as ComponentType>::ABI;

            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <$inner as ComponentType>::typecheck(ty, types)
            }
        }

        // SAFETY: as above.
        unsafe impl Lower for $wrapper {
            fn linear_lower_to_flat<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                ty: InterfaceType,
                dst: &mut std::mem::MaybeUninit<Self::Lower>,
            ) -> wasmtime::Result<()> {
                self.0.linear_lower_to_flat(cx, ty, dst)
            }

            fn linear_lower_to_memory<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                ty: InterfaceType,
                offset: usize,
            ) -> wasmtime::Result<()> {
                match $message(&self.0) {
                    Some((discriminants, at, message)) => {
                        lower_message(cx, offset, discriminants, at, message)
                    }
                    None => self.0.linear_lower_to_memory(cx, ty, offset),
                }
            }
        }
    };
}

/// Where a message lies in a lowered value: the enclosing discriminants (offset, value),
/// the offset of the `incoming`, and the message.
type Found<'a> = Option<(&'static [(usize, u8)], usize, &'a GuestMessage)>;

/// What `receive` returns, its message lowered by hand.
pub(super) struct ReceiveResult(pub(super) Option<GuestIncoming>);

/// The message a `receive` returns, if it is one.
fn received(r: &Option<GuestIncoming>) -> Found<'_> {
    match r {
        Some(GuestIncoming::Message(m)) => Some((&[(0, SOME)], IN_OPTION, m)),
        _ => None,
    }
}

lowered_by_hand!(ReceiveResult(Option<GuestIncoming>), received);

/// What `send-receive` returns, its message lowered by hand.
pub(super) struct SendReceiveResult(pub(super) Result<Option<GuestIncoming>, wit::SendError>);

/// The message a `send-receive` returns, if it is one.
fn sent_received(r: &Result<Option<GuestIncoming>, wit::SendError>) -> Found<'_> {
    match r {
        Ok(Some(GuestIncoming::Message(m))) => {
            Some((&[(0, OK), (IN_RESULT, SOME)], IN_RESULT + IN_OPTION, m))
        }
        _ => None,
    }
}

lowered_by_hand!(SendReceiveResult(Result<Option<GuestIncoming>, wit::SendError>), sent_received);
