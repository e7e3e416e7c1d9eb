//! The canonical ABI of the hot mailbox calls, by hand: received messages lowered into the
//! guest (by `receive`, `send-receive` and `receive-many`), and `send`'s and
//! `send-receive`'s arguments lifted out of it.
//!
//! Every receive lowers the entry it takes into the guest's memory. Lowered the derived way,
//! field by field, each of the dozen scalars of a `result<option<incoming>, send-error>`
//! holding a message looks the instance's memory up again through the store (in W1's
//! profile that lookup alone was 6% of the node's time). Here the common case, a message,
//! is written with one lookup for its payload and one for everything else; any other value
//! takes the derived path. The arguments of a send are read from their flat values
//! directly, the payload from the memory the call already holds, and an empty selector
//! list without a look at memory at all.
//!
//! This implements wasmtime's `Lower` and `Lift` with the hidden API its own derive macros
//! expand to (`component::__internal`): not semver-stable, so tied to the wasmtime version
//! the lockfile pins. What keeps it honest: the type check is the derived types' own (an
//! instance whose WIT differs is refused, as before), the offsets and flat counts are
//! computed from their ABI constants (checked at compile time against the derived sizes),
//! the fields are destructured exhaustively (a field added to the WIT breaks the build
//! here), and a test checks every field as a guest reads it, through both receiving calls
//! (`a_received_message_reaches_the_guest_field_for_field_through_receive_and_send_receive`).

use bytes::Bytes;
use wasmtime::ValRaw;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentVariant, InstanceType, InterfaceType, LiftContext, LowerContext,
};
use wasmtime::component::{ComponentNamedList, ComponentType, Lift, Lower};

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
/// ABI, type check and flat lowering, lowering to memory with `$to_memory` (by hand for
/// messages, the derived way for anything else).
macro_rules! lowered_by_hand {
    ($wrapper:ident($inner:ty), $to_memory:path) => {
        // SAFETY: the ABI, the flat representation and the type check are `$inner`'s, and
        // `$to_memory` writes exactly the layout `$inner`'s derived lowering writes.
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
                $to_memory(&self.0, cx, ty, offset)
            }
        }
    };
}

/// What `receive` returns, its message lowered by hand.
pub(super) struct ReceiveResult(pub(super) Option<GuestIncoming>);

/// Lowers what a `receive` returns at `offset`.
fn receive_to_memory<T>(
    r: &Option<GuestIncoming>,
    cx: &mut LowerContext<'_, T>,
    ty: InterfaceType,
    offset: usize,
) -> wasmtime::Result<()> {
    match r {
        Some(GuestIncoming::Message(m)) => lower_message(cx, offset, &[(0, SOME)], IN_OPTION, m),
        _ => r.linear_lower_to_memory(cx, ty, offset),
    }
}

lowered_by_hand!(ReceiveResult(Option<GuestIncoming>), receive_to_memory);

/// What `send-receive` returns, its message lowered by hand.
pub(super) struct SendReceiveResult(pub(super) Result<Option<GuestIncoming>, wit::SendError>);

/// Lowers what a `send-receive` returns at `offset`.
fn send_receive_to_memory<T>(
    r: &Result<Option<GuestIncoming>, wit::SendError>,
    cx: &mut LowerContext<'_, T>,
    ty: InterfaceType,
    offset: usize,
) -> wasmtime::Result<()> {
    match r {
        Ok(Some(GuestIncoming::Message(m))) => {
            lower_message(cx, offset, &[(0, OK), (IN_RESULT, SOME)], IN_RESULT + IN_OPTION, m)
        }
        _ => r.linear_lower_to_memory(cx, ty, offset),
    }
}

lowered_by_hand!(SendReceiveResult(Result<Option<GuestIncoming>, wit::SendError>), send_receive_to_memory);

/// What `receive-many` returns, its messages lowered by hand.
pub(super) struct ReceiveManyResult(pub(super) Vec<GuestIncoming>);

/// Lowers what a `receive-many` returns at `offset`: the list's memory from the guest's
/// realloc, each entry in place, then the list's pointer and length.
fn receive_many_to_memory<T>(
    entries: &[GuestIncoming],
    cx: &mut LowerContext<'_, T>,
    ty: InterfaceType,
    offset: usize,
) -> wasmtime::Result<()> {
    let InterfaceType::List(list) = ty else {
        return Err(wasmtime::format_err!("unexpected type of receive-many's result"));
    };
    let element = cx.types[list].element;
    let size = entries
        .len()
        .checked_mul(GuestIncoming::SIZE32)
        .ok_or_else(|| wasmtime::format_err!("size overflow copying a list"))?;
    let base = cx.realloc(0, 0, GuestIncoming::ALIGN32, size)?;
    for (i, entry) in entries.iter().enumerate() {
        let at = base + i * GuestIncoming::SIZE32;
        match entry {
            GuestIncoming::Message(message) => lower_message(cx, at, &[], 0, message)?,
            other => other.linear_lower_to_memory(cx, element, at)?,
        }
    }
    let out = cx.as_slice_mut().get_mut(offset..offset + 8).ok_or_else(out_of_bounds)?;
    // Both fit in u32: realloc took the list's size as such.
    out[..4].copy_from_slice(&(base as u32).to_le_bytes());
    out[4..].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    Ok(())
}

lowered_by_hand!(ReceiveManyResult(Vec<GuestIncoming>), receive_many_to_memory);

/// `send`'s arguments: to, tag, payload.
type SendTuple = (wit::Pid, u64, Vec<u8>);
/// `send-receive`'s arguments: to, tag, payload, selectors, timeout-ms.
type SendReceiveTuple = (wit::Pid, u64, Vec<u8>, Vec<wit::Selector>, Option<u64>);

/// Flat values of `send`'s and `send-receive`'s arguments: pid (3), tag, payload (2), and
/// for `send-receive` selectors (2) and timeout (2).
const SEND_FLAT: usize = 6;
const SEND_RECEIVE_FLAT: usize = 10;

const _: () = {
    // The flat layouts read below are the derived tuples'.
    assert!(size_of::<<SendTuple as ComponentType>::Lower>() == size_of::<[ValRaw; SEND_FLAT]>());
    assert!(
        size_of::<<SendReceiveTuple as ComponentType>::Lower>() == size_of::<[ValRaw; SEND_RECEIVE_FLAT]>()
    );
};

/// The pid in flat values `node, incarnation, index`.
fn lift_pid(flat: &[ValRaw]) -> wit::Pid {
    wit::Pid { node: flat[0].get_u64(), incarnation: flat[1].get_u32(), index: flat[2].get_u64() }
}

/// A copy of the `list<u8>` at `ptr`, `len` of the guest's memory, refused as wasmtime's
/// own lifting refuses it when it lies outside (and with the fuel it would charge).
fn lift_bytes(cx: &mut LiftContext<'_>, ptr: &ValRaw, len: &ValRaw) -> wasmtime::Result<Vec<u8>> {
    let (ptr, len) = (ptr.get_u32() as usize, len.get_u32() as usize);
    let Some(bytes) = cx.memory().get(ptr..).and_then(|m| m.get(..len)) else {
        return Err(wasmtime::format_err!("list pointer/length out of bounds of memory"));
    };
    let bytes = bytes.to_vec();
    cx.consume_fuel_array(len, 1)?;
    Ok(bytes)
}

/// The type of field `i` of the argument tuple `ty`.
fn field_type(cx: &LiftContext<'_>, ty: InterfaceType, i: usize) -> wasmtime::Result<InterfaceType> {
    match ty {
        InterfaceType::Tuple(t) => cx.types[t].types.get(i).copied(),
        _ => None,
    }
    .ok_or_else(|| wasmtime::format_err!("unexpected type of a mailbox call's arguments"))
}

/// Implements `ComponentType`, `ComponentNamedList` and `Lift` for an argument struct with
/// the derived tuple's ABI and type check, lifting from flat values by hand and from memory
/// (where arguments never are: they are fewer than 16 flat values) the derived way.
macro_rules! lifted_by_hand {
    ($args:ident($tuple:ty, $flat:expr), $lift:path, ($($field:ident),*)) => {
        // SAFETY: the ABI and the type check are `$tuple`'s, and `Lower` is as many flat values
        // as `$tuple`'s (checked above), read in its order.
        unsafe impl ComponentType for $args {
            type Lower = [ValRaw; $flat];
            const ABI: CanonicalAbiInfo = <$tuple as ComponentType>::ABI;

            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <$tuple as ComponentType>::typecheck(ty, types)
            }
        }

        // SAFETY: as above; it type-checks as the tuple does.
        unsafe impl ComponentNamedList for $args {}

        // SAFETY: as above.
        unsafe impl Lift for $args {
            fn linear_lift_from_flat(
                cx: &mut LiftContext<'_>,
                ty: InterfaceType,
                src: &Self::Lower,
            ) -> wasmtime::Result<Self> {
                $lift(cx, ty, src)
            }

            fn linear_lift_from_memory(
                cx: &mut LiftContext<'_>,
                ty: InterfaceType,
                bytes: &[u8],
            ) -> wasmtime::Result<Self> {
                let ($($field,)*) = <$tuple as Lift>::linear_lift_from_memory(cx, ty, bytes)?;
                Ok(Self { $($field),* })
            }
        }
    };
}

/// `send`'s arguments, lifted by hand.
pub(super) struct SendArgs {
    pub to: wit::Pid,
    pub tag: u64,
    pub payload: Vec<u8>,
}

/// [`SendArgs`] from their flat values.
fn lift_send(
    cx: &mut LiftContext<'_>,
    _ty: InterfaceType,
    src: &[ValRaw; SEND_FLAT],
) -> wasmtime::Result<SendArgs> {
    Ok(SendArgs {
        to: lift_pid(&src[..3]),
        tag: src[3].get_u64(),
        payload: lift_bytes(cx, &src[4], &src[5])?,
    })
}

lifted_by_hand!(SendArgs(SendTuple, SEND_FLAT), lift_send, (to, tag, payload));

/// `send-receive`'s arguments, lifted by hand.
pub(super) struct SendReceiveArgs {
    pub to: wit::Pid,
    pub tag: u64,
    pub payload: Vec<u8>,
    pub selectors: Vec<wit::Selector>,
    pub timeout_ms: Option<u64>,
}

/// [`SendReceiveArgs`] from their flat values; selectors the derived way, unless there are
/// none (the common case: a reply, or the next request, whatever it is).
fn lift_send_receive(
    cx: &mut LiftContext<'_>,
    ty: InterfaceType,
    src: &[ValRaw; SEND_RECEIVE_FLAT],
) -> wasmtime::Result<SendReceiveArgs> {
    let selectors = if src[7].get_u32() == 0 {
        Vec::new()
    } else {
        let selectors_type = field_type(cx, ty, 3)?;
        Vec::<wit::Selector>::linear_lift_from_flat(cx, selectors_type, &[src[6], src[7]])?
    };
    let timeout_ms = match src[8].get_u32() {
        0 => None,
        1 => Some(src[9].get_u64()),
        _ => return Err(wasmtime::format_err!("invalid option discriminant")),
    };
    Ok(SendReceiveArgs {
        to: lift_pid(&src[..3]),
        tag: src[3].get_u64(),
        payload: lift_bytes(cx, &src[4], &src[5])?,
        selectors,
        timeout_ms,
    })
}

lifted_by_hand!(
    SendReceiveArgs(SendReceiveTuple, SEND_RECEIVE_FLAT),
    lift_send_receive,
    (to, tag, payload, selectors, timeout_ms)
);
