//! Database schema migrations. The schema and the sea-orm-migration `Migrator` arrive
//! with the persistence issue; services never run migrations, `cinder-manage db sync`
//! does.
