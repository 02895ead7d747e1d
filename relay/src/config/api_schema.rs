//! Schemas the admin API's document ([`crate::admin::openapi`]) gives fields whose Rust type
//! it cannot describe by itself.

use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::KnownFormat;

fn text(format: KnownFormat) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(format)))
}

/// An IPv4 or IPv6 address.
pub fn ip_address() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(text(KnownFormat::Ipv4))
            .item(text(KnownFormat::Ipv6))
            .build(),
    )
}

/// An IPv4 or IPv6 address, or null.
pub fn ip_address_or_null() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(text(KnownFormat::Ipv4))
            .item(text(KnownFormat::Ipv6))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build(),
    )
}

/// An IPv4 or IPv6 address, or empty (when another field names the entry).
pub fn ip_address_or_empty() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(text(KnownFormat::Ipv4))
            .item(text(KnownFormat::Ipv6))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(0)),
            )
            .build(),
    )
}

/// Switch numbers, each once.
pub fn switch_numbers() -> Schema {
    Schema::Array(
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(8)),
            )
            .unique_items(true)
            .max_items(Some(8))
            .build(),
    )
}
