//! One table per byte-coded field: [`byte_enum!`] declares the enum with each value's byte and
//! derives both directions from that one list.

/// Declares a fieldless enum whose values are bytes on the wire (`Value = byte`), with
/// `ALL` (declaration order), `byte()` and `from_byte()`, all from the one list.
macro_rules! byte_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $byte:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(u8)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant = $byte ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's byte on the wire.
            pub const fn byte(self) -> u8 {
                self as u8
            }

            /// The value a byte stands for; `None` for a byte no value has.
            pub const fn from_byte(b: u8) -> Option<$name> {
                $( if b == $byte { return Some($name::$variant); } )+
                None
            }
        }
    };
}

pub(crate) use byte_enum;

#[cfg(test)]
mod tests {
    use crate::{CloseReason, IdentifyResult, Kind, Product};

    /// How many of the 256 bytes stand for a value; each value's byte reads back as itself.
    fn decoded<T: Copy + PartialEq + std::fmt::Debug>(
        all: &[T],
        byte: fn(T) -> u8,
        from_byte: fn(u8) -> Option<T>,
    ) -> usize {
        for &v in all {
            assert_eq!(from_byte(byte(v)), Some(v));
        }
        (0..=255u8).filter(|b| from_byte(*b).is_some()).count()
    }

    #[test]
    fn every_table_reads_back_and_no_other_byte_has_a_value() {
        assert_eq!(decoded(Kind::ALL, Kind::byte, Kind::from_byte), 7);
        assert_eq!(decoded(Product::ALL, Product::byte, Product::from_byte), 13);
        assert_eq!(
            decoded(
                IdentifyResult::ALL,
                IdentifyResult::byte,
                IdentifyResult::from_byte
            ),
            11
        );
        assert_eq!(
            decoded(CloseReason::ALL, CloseReason::byte, CloseReason::from_byte),
            7
        );
        assert_eq!(Kind::from_byte(b'E'), Some(Kind::Event));
        assert_eq!(Product::Acd.byte(), 0x41);
        assert_eq!(CloseReason::from_byte(0), None);
    }
}
