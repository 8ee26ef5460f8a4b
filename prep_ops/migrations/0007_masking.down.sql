-- The masked views (they read the functions and the salt) go with their schema.
DROP SCHEMA masked CASCADE;
DROP SCHEMA masking_private CASCADE;
