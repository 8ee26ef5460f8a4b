-- Of the extensions named, those only a superuser may create (their default version is not trusted),
-- in the order given.
SELECT e.name
FROM unnest(%(names)s::text[]) WITH ORDINALITY AS wanted(name, position)
JOIN pg_available_extensions e ON e.name = wanted.name
JOIN pg_available_extension_versions v ON v.name = e.name AND v.version = e.default_version
WHERE v.superuser AND NOT v.trusted
ORDER BY wanted.position
